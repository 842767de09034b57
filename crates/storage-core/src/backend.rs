//! The `StorageBackend` trait and what a backend declares about itself.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use url::Url;

use crate::error::Result;
use crate::error::StorageError;
use crate::listing::{Page, PageRequest, Quota};
use crate::meta::ObjectMeta;
use crate::name::{ObjectKey, ObjectName, validate_part};
use crate::purge::PurgeReport;
use crate::range::ByteRange;

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

    /// Reads bytes `range` of an object as a stream: what a server needs to
    /// answer a browser's `Range` request (a PDF viewer, a video).
    ///
    /// # Contract
    /// - The range is resolved against the object's size ([`ByteRange::resolve`]):
    ///   a start past the end is `InvalidInput` naming the size, the end is
    ///   clamped, a suffix longer than the object is the whole object, and an
    ///   empty range is an empty stream.
    /// - The stream yields exactly the resolved length, or ends with an error: a
    ///   provider that ignores the range and sends the whole body is read past
    ///   the bytes before the range, and a cut resumes at the next byte.
    /// - The bytes are **not** checked against the provider's hash, which covers
    ///   the whole object only; only their length is checked.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use storage_core::{ByteRange, MemoryBackend, ObjectName, StorageBackend};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let backend = MemoryBackend::new();
    /// let key = backend.put_object(&ObjectName::new("u1", "d1", "")?, Bytes::from_static(b"0123456789"), "t").await?;
    /// let tail = backend.get_range(&key, ByteRange::last(3)).await?;
    /// assert_eq!(storage_core::stream::collect(tail, 3).await?, Bytes::from_static(b"789"));
    /// assert!(backend.get_range(&key, ByteRange::from(11..)).await.is_err());
    /// # Ok::<(), storage_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a range past the end; as `get_stream` otherwise;
    /// `Unsupported` from backends that do not implement it (the default).
    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        let _ = (key, range);
        Err(StorageError::unsupported(
            "get_range",
            "this backend cannot read a range",
        ))
    }

    /// One page of the objects the application stored for `user_id`, by the same
    /// name and case rules as put: files the application cannot see, or did not
    /// store (another name spelling, a temporary upload), are left out, and so
    /// is every other user's folder, even one whose id differs only in case.
    ///
    /// Follow [`Page::next`] with [`PageRequest::after`] until it is `None`. A
    /// token may be stored and used later; a backend checks it before it
    /// follows it. Objects stored or deleted while a listing is paged may or
    /// may not appear.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use storage_core::{MemoryBackend, ObjectName, PageRequest, StorageBackend};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let backend = MemoryBackend::new();
    /// for doc in ["a", "b", "c"] {
    ///     backend.put_object(&ObjectName::new("u1", doc, ".pdf")?, Bytes::from_static(b"%PDF"), "t").await?;
    /// }
    /// let first = backend.list_user("u1", &PageRequest::first(2)?).await?;
    /// assert_eq!(first.items.len(), 2);
    /// let rest = backend.list_user("u1", &PageRequest::first(2)?.after(first.next.unwrap())).await?;
    /// assert_eq!(rest.items[0].name.document_id(), "c");
    /// assert!(rest.next.is_none());
    /// # Ok::<(), storage_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a bad user id or a token this backend did not issue;
    /// the provider categories otherwise; `Unsupported` from backends that do not
    /// implement it (the default).
    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        validate_part("user_id", user_id)?;
        let _ = page;
        Err(StorageError::unsupported(
            "list_user",
            "this backend cannot list a user's objects",
        ))
    }

    /// The account's email address or display name, where the provider
    /// reports it cheaply; `None` (the default) where there is no account.
    ///
    /// # Errors
    /// The provider categories.
    async fn account_name(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// The storage figures of the drive behind this backend. A figure the
    /// provider does not report, or an unlimited quota, is `None`, not zero.
    ///
    /// # Errors
    /// The provider categories; `Unsupported` from backends that do not
    /// implement it (the default).
    async fn quota(&self) -> Result<Quota> {
        Err(StorageError::unsupported("quota", "this backend reports no quota"))
    }

    /// [`put_stream`](Self::put_stream), unless the name is stored already:
    /// then [`StorageError::AlreadyExists`] with the stored object's key, and the
    /// stored object is left as it was. Of any number of concurrent creators of
    /// one name, one wins and the others get `AlreadyExists`; a loser leaves
    /// nothing behind.
    ///
    /// Google Drive has no precondition on names, so its backend checks, uploads,
    /// checks again and removes its own copy when an earlier one appeared: a
    /// best effort that holds while Drive's listing shows every file it has
    /// created (see the Drive backend's docs).
    ///
    /// # Errors
    /// `AlreadyExists`; as `put_stream` otherwise; `Unsupported` from backends
    /// that do not implement it (the default).
    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        let _ = (name, body, size, content_type);
        Err(StorageError::unsupported(
            "put_stream_if_absent",
            "this backend cannot create conditionally",
        ))
    }

    /// [`put_object`](Self::put_object), unless the name is stored already; see
    /// [`put_stream_if_absent`](Self::put_stream_if_absent).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use storage_core::{MemoryBackend, ObjectName, StorageBackend, StorageError};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let backend = MemoryBackend::new();
    /// let name = ObjectName::new("u1", "invoice-7", ".pdf")?;
    /// let key = backend.put_object_if_absent(&name, Bytes::from_static(b"one"), "t").await?;
    /// let again = backend.put_object_if_absent(&name, Bytes::from_static(b"two"), "t").await;
    /// assert!(matches!(again, Err(StorageError::AlreadyExists { key: k }) if k == key.as_str()));
    /// assert_eq!(backend.get_object(&key).await?, Bytes::from_static(b"one"));
    /// # Ok::<(), storage_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`put_stream_if_absent`](Self::put_stream_if_absent).
    async fn put_object_if_absent(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        let size = body.len() as u64;
        self.put_stream_if_absent(name, crate::stream::from_bytes(body, 1 << 20), size, content_type)
            .await
    }

    /// What this backend supports beyond the required operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
}
