//! The `StorageBackend` trait and what a backend declares about itself.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use url::Url;

use crate::error::Result;
use crate::error::StorageError;
use crate::meta::ObjectMeta;
use crate::name::{ObjectKey, ObjectName, validate_part};
use crate::purge::PurgeReport;

/// A stream of body chunks, as `put_stream` takes and `get_stream` returns.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// What a backend can do beyond the operations every backend has.
///
/// The conformance kit reads these to choose its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// `presigned_get_url` works, for expiries up to this long.
    pub presign_get: Option<Duration>,
    /// `generate_presigned_put_url` works, for expiries up to this long.
    pub presign_put: Option<Duration>,
    /// `stat_object` reports the content type given at upload. OneDrive, for
    /// one, derives its own from the file extension.
    pub keeps_content_type: bool,
}

impl Capabilities {
    /// No optional capability.
    pub const NONE: Self = Self {
        presign_get: None,
        presign_put: None,
        keeps_content_type: false,
    };

    /// Presigned GET URLs up to `max` long.
    #[must_use]
    pub const fn with_presign_get(mut self, max: Duration) -> Self {
        self.presign_get = Some(max);
        self
    }

    /// `stat_object` reports the content type given at upload.
    #[must_use]
    pub const fn keeping_content_type(mut self) -> Self {
        self.keeps_content_type = true;
        self
    }

    /// Presigned PUT URLs up to `max` long.
    #[must_use]
    pub const fn with_presign_put(mut self, max: Duration) -> Self {
        self.presign_put = Some(max);
        self
    }
}

/// Where an application's files live: a user's cloud drive, a local folder, or memory.
///
/// # Contract
/// - Names are validated [`ObjectName`]s; a backend stores the file as
///   `{document_id}{extension}` under a folder for `user_id`.
/// - **Names are injective.** Two names that differ in any byte, case included,
///   never share a stored object or a user folder, whatever the provider's case
///   rules: providers store the case-safe spelling of [`crate::stored_name`].
/// - **Only documents are keys.** A key that names a folder, or anything else
///   that is not a stored object, is `InvalidInput` or `NotFound` for every
///   method, and nothing is deleted.
/// - `put_*` returns the provider-native [`ObjectKey`] that the other methods take.
///   Putting the same name again replaces the stored bytes or stores a new object;
///   either way the returned key reads back the new bytes.
/// - A failed put leaves no partial object visible, and never destroys the bytes
///   an earlier put of the same name stored.
/// - `put_stream` is told the `size` up front. A stream that yields a different
///   number of bytes fails with [`InvalidInput`](crate::StorageError::InvalidInput)
///   and stores nothing.
/// - `delete_object` of a key that is already gone is `Ok(())`.
/// - A backend is stateless about credentials: it never refreshes a token. A
///   refused token is [`CloudConnection`](crate::StorageError::CloudConnection).
///
/// # Errors
/// Every method returns [`StorageError`](crate::StorageError): `NotFound` for a
/// missing key, `InvalidInput` for a malformed key or argument (before any I/O),
/// `Unsupported` for an operation this backend lacks, and the provider categories
/// otherwise.
///
/// # Example
/// ```
/// use bytes::Bytes;
/// use storage_core::{MemoryBackend, ObjectName, StorageBackend};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let backend = MemoryBackend::new();
/// let name = ObjectName::new("user-1", "scan-9", ".pdf")?;
/// let key = backend.put_object(&name, Bytes::from_static(b"%PDF"), "application/pdf").await?;
/// assert_eq!(backend.get_object(&key).await?, Bytes::from_static(b"%PDF"));
/// assert_eq!(backend.stat_object(&key).await?.size, 4);
/// backend.delete_object(&key).await?;
/// backend.delete_object(&key).await?; // already gone is fine
/// # Ok::<(), storage_core::StorageError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait StorageBackend: Send + Sync + std::fmt::Debug {
    /// Stores a body held in memory.
    async fn put_object(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey>;

    /// Stores a streamed body of exactly `size` bytes, in bounded memory.
    async fn put_stream(&self, name: &ObjectName, body: ByteStream, size: u64, content_type: &str)
    -> Result<ObjectKey>;

    /// Reads a whole object into memory.
    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes>;

    /// Reads an object as a stream.
    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream>;

    /// Deletes an object; a key that is already gone is `Ok(())`.
    async fn delete_object(&self, key: &ObjectKey) -> Result<()>;

    /// Size, content type and checksum of an object.
    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta>;

    /// A URL that reads the object without credentials, valid for `expires_in`.
    async fn presigned_get_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url>;

    /// A URL that writes the object without credentials, valid for `expires_in`.
    async fn generate_presigned_put_url(&self, key: &ObjectKey, expires_in: Duration) -> Result<Url>;

    /// `Ok` when the backend is reachable and its credentials work; the error says why not.
    async fn health_check(&self) -> Result<()>;

    /// Deletes every object stored for `user_id`, and deals with the user's
    /// folder; nothing else is touched.
    ///
    /// # Contract
    /// - `user_id` is checked by the [`ObjectName`] rules before any request, so it
    ///   can only name one user's folder: never a parent, the root, or another user,
    ///   not even one whose id differs only in case.
    /// - It never permanently destroys what the application did not create. Files
    ///   the user put in the folder (invisible to a Drive app with the
    ///   `drive.file` scope) go to the provider's trash with the folder, or the
    ///   folder is kept; [`PurgeReport::folder`] says which.
    /// - It is idempotent: a second call, or a call after an interrupted one, removes
    ///   what is left and reports only that; a user with nothing stored is `Ok` with
    ///   an empty report.
    /// - A wrapper (such as the factory's managed connection) forwards it.
    ///
    /// # Errors
    /// `InvalidInput` for a bad user id; `Unsupported` from backends that do not
    /// implement it (the default); the provider categories otherwise. After an
    /// error, calling again finishes the job.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use storage_core::{MemoryBackend, ObjectName, StorageBackend};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let backend = MemoryBackend::new();
    /// backend.put_object(&ObjectName::new("u1", "d1", "")?, Bytes::from_static(b"abc"), "t").await?;
    /// backend.put_object(&ObjectName::new("u2", "d1", "")?, Bytes::from_static(b"x"), "t").await?;
    /// let report = backend.purge_user("u1").await?;
    /// assert_eq!((report.objects, report.bytes), (1, 3));
    /// assert!(backend.purge_user("u1").await?.is_empty());
    /// assert_eq!(backend.len(), 1);
    /// assert!(backend.purge_user("..").await.is_err());
    /// # Ok::<(), storage_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    async fn purge_user(&self, user_id: &str) -> Result<PurgeReport> {
        validate_part("user_id", user_id)?;
        Err(StorageError::unsupported(
            "purge_user",
            "this backend cannot remove a user's objects",
        ))
    }

    /// What this backend supports beyond the required operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
}
