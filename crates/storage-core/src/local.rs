//! A backend on the local filesystem, under one root directory.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use url::Url;

use crate::backend::{ByteStream, StorageBackend};
use crate::checksum::Md5Hasher;
use crate::error::{Result, StorageError};
use crate::listing::{ObjectInfo, Page, PageRequest, Quota, page_of};
use crate::meta::ObjectMeta;
use crate::name::{ObjectKey, ObjectName, validate_part, validate_stored_part as validate_stored};
use crate::purge::PurgeReport;
use crate::range::ByteRange;

/// Read buffer size for streams and hashing.
const READ_PIECE: usize = 256 * 1024;

/// Objects stored as files `{root}/{user_id}/{document_id}{extension}`.
///
/// - Keys are the relative path `{user_id}/{file name}`; each part is checked by the
///   [`ObjectName`] rules, so a key can never name `..`, an absolute path or
///   anything outside the root, and a symbolic link on the way is refused.
/// - A put writes a temporary file beside the target (its name holds `#`, which no
///   valid name can), fsyncs it, renames it into place and fsyncs the folder: a
///   crash leaves the old object or the new one, never a torn one.
/// - Streams go through a fixed-size buffer.
/// - `stat_object` reports the size and an md5 computed from the stored bytes;
///   the content type is not kept.
/// - Presigned URLs are [`Unsupported`](StorageError::Unsupported).
///
/// ```
/// use bytes::Bytes;
/// use storage_core::{LocalBackend, ObjectName, StorageBackend};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let backend = LocalBackend::new(dir.path())?;
/// let key = backend.put_object(&ObjectName::new("u1", "d1", ".txt")?, Bytes::from_static(b"hi"), "text/plain").await?;
/// assert_eq!(key.as_str(), "u1/d1.txt");
/// assert!(dir.path().join("u1/d1.txt").exists());
/// # Ok::<(), storage_core::StorageError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// Opens (and creates when missing) the root directory.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the directory cannot be created or resolved.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| StorageError::io("failed to create the root directory", e))?;
        let root = root
            .canonicalize()
            .map_err(|e| StorageError::io("failed to resolve the root directory", e))?;
        Ok(Self { root })
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks a key and returns the user folder and the file path it names.
    fn resolve(&self, key: &ObjectKey) -> Result<(PathBuf, PathBuf)> {
        let mut parts = key.as_str().split('/');
        let (Some(user), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(StorageError::invalid_input("a local key is `{user_id}/{file name}`"));
        };
        validate_stored("key user part", user)?;
        validate_stored("key file part", file)?;
        let dir = self.root.join(user);
        let path = dir.join(file);
        Ok((dir, path))
    }

    /// Refuses a path that is a symbolic link; a missing path is fine.
    async fn refuse_symlink(path: &Path) -> Result<()> {
        match tokio::fs::symlink_metadata(path).await {
            Ok(m) if m.file_type().is_symlink() => {
                Err(StorageError::invalid_input("key resolves through a symbolic link"))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("failed to inspect the object path", e)),
        }
    }

    /// Resolves a key for reading: both the folder and the file must be real.
    async fn resolve_existing(&self, key: &ObjectKey) -> Result<PathBuf> {
        let (dir, path) = self.resolve(key)?;
        Self::refuse_symlink(&dir).await?;
        Self::refuse_symlink(&path).await?;
        Ok(path)
    }

    async fn open(&self, key: &ObjectKey) -> Result<tokio::fs::File> {
        let path = self.resolve_existing(key).await?;
        tokio::fs::File::open(&path).await.map_err(|e| map_read_error(e, key))
    }

    /// Writes through a temporary file and renames it into place.
    ///
    /// With `create` only, the file is linked into place with `link(2)`, which
    /// fails when the name exists: of concurrent creators exactly one wins, and
    /// the others get `AlreadyExists` and leave nothing behind.
    async fn write_atomically(&self, name: &ObjectName, body: Body, create: bool) -> Result<ObjectKey> {
        let key = ObjectKey::new(name.stored_path());
        let (dir, path) = self.resolve(&key)?;
        Self::refuse_symlink(&dir).await?;
        match tokio::fs::create_dir(&dir).await {
            Ok(()) => sync_dir(&self.root).await?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::io("failed to create the user folder", e)),
        }
        Self::refuse_symlink(&path).await?;
        let tmp = dir.join(format!("{}#{:016x}.part", name.stored_file_name(), fastrand::u64(..)));
        let guard = RemoveOnDrop::new(tmp.clone());
        let mut file = guard.create().await?;
        match body {
            Body::Bytes(bytes) => file.write_all(&bytes).await.map_err(write_error)?,
            Body::Stream { mut stream, size } => {
                let mut written: u64 = 0;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    written += chunk.len() as u64;
                    if written > size {
                        return Err(StorageError::invalid_input(format!(
                            "stream is longer than the declared {size} bytes"
                        )));
                    }
                    file.write_all(&chunk).await.map_err(write_error)?;
                }
                if written != size {
                    return Err(StorageError::invalid_input(format!(
                        "stream ended after {written} of the declared {size} bytes"
                    )));
                }
            }
        }
        file.sync_all().await.map_err(write_error)?;
        drop(file);
        if create {
            // The temporary file goes either way (`guard`); the link is the object.
            match tokio::fs::hard_link(&tmp, &path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(StorageError::AlreadyExists { key: key.into_string() });
                }
                Err(e) => return Err(StorageError::io("failed to move the object into place", e)),
            }
        } else {
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| StorageError::io("failed to move the object into place", e))?;
            guard.disarm();
        }
        sync_dir(&dir).await?;
        Ok(key)
    }
}

enum Body {
    Bytes(Bytes),
    Stream { stream: ByteStream, size: u64 },
}

/// Removes a temporary file when a put fails or is cancelled.
struct RemoveOnDrop {
    path: Option<PathBuf>,
    /// Set when the guard goes: an open still on the blocking pool then
    /// removes the file it creates, which the guard could not.
    gone: Arc<AtomicBool>,
}

impl RemoveOnDrop {
    fn new(path: PathBuf) -> Self {
        Self {
            path: Some(path),
            gone: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Creates the temporary file. A put cancelled while the open waits on
    /// the blocking pool is gone before the file exists; the open then
    /// removes the file itself, so no `.part` file outlives its put.
    async fn create(&self) -> Result<tokio::fs::File> {
        let failed = |e| StorageError::io("failed to create a temporary file", e);
        let path = self.path.clone().unwrap_or_default();
        let gone = Arc::clone(&self.gone);
        let opened = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
            // The guard sets `gone` before it removes the path: either it
            // sees this file, or this check sees `gone`.
            if gone.load(Ordering::SeqCst) {
                drop(file);
                let _ = std::fs::remove_file(&path);
                return Err(std::io::Error::other("the put was cancelled"));
            }
            Ok(file)
        })
        .await
        .map_err(|e| failed(std::io::Error::other(e)))?;
        opened.map(tokio::fs::File::from_std).map_err(failed)
    }

    fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::SeqCst);
        if let Some(path) = self.path.take() {
            // Runs on failure or cancellation only; a small synchronous unlink.
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_error(e: std::io::Error) -> StorageError {
    if e.kind() == ErrorKind::StorageFull {
        StorageError::QuotaExceeded
    } else {
        StorageError::io("failed to write the object", e)
    }
}

fn map_read_error(e: std::io::Error, key: &ObjectKey) -> StorageError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => StorageError::not_found(key.as_str()),
        ErrorKind::PermissionDenied => StorageError::PermissionDenied {
            message: "the object file is not readable".into(),
        },
        _ => StorageError::io("failed to read the object", e),
    }
}

/// Makes a rename or a new entry in `dir` durable.
async fn sync_dir(dir: &Path) -> Result<()> {
    let d = tokio::fs::File::open(dir)
        .await
        .map_err(|e| StorageError::io("failed to open a folder for sync", e))?;
    d.sync_all()
        .await
        .map_err(|e| StorageError::io("failed to sync a folder", e))
}

#[async_trait]
impl StorageBackend for LocalBackend {
    async fn put_object(&self, name: &ObjectName, body: Bytes, _content_type: &str) -> Result<ObjectKey> {
        self.write_atomically(name, Body::Bytes(body), false).await
    }

    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        _content_type: &str,
    ) -> Result<ObjectKey> {
        self.write_atomically(name, Body::Stream { stream: body, size }, false)
            .await
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        let path = self.resolve_existing(key).await?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| map_read_error(e, key))
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        let file = self.open(key).await?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_PIECE)
            .map(|r| r.map_err(|e| StorageError::io("failed to read the object", e)));
        Ok(Box::pin(stream))
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        let path = self.resolve_existing(key).await?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(()),
            Err(e) => Err(StorageError::io("failed to delete the object", e)),
        }
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let mut file = self.open(key).await?;
        let mut hasher = Md5Hasher::new();
        let mut buf = vec![0u8; READ_PIECE];
        let mut size: u64 = 0;
        loop {
            let n = file.read(&mut buf).await.map_err(|e| map_read_error(e, key))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok(ObjectMeta::new(size).with_checksum(hasher.finish()))
    }

    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        let mut file = self.open(key).await?;
        let size = file.metadata().await.map_err(|e| map_read_error(e, key))?.len();
        let (first, len) = range.resolve(size)?;
        file.seek(std::io::SeekFrom::Start(first))
            .await
            .map_err(|e| map_read_error(e, key))?;
        let reader = file.take(len);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, READ_PIECE)
            .map(|r| r.map_err(|e| StorageError::io("failed to read the object", e)));
        // A file cut short under the read ends early: that is an error, not a short range.
        Ok(crate::range::exact_len(Box::pin(stream), len))
    }

    /// Pages in the order of the stored file names; a token is the last one
    /// returned. Temporaries of unfinished puts, and files whose names this
    /// backend did not write, are left out.
    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        validate_part("user_id", user_id)?;
        let stored_user = crate::stored_name::encode_part(user_id);
        let dir = self.root.join(&stored_user);
        Self::refuse_symlink(&dir).await?;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(Page::default());
            }
            Err(e) => return Err(StorageError::io("failed to list the user folder", e)),
        };
        let mut found = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io("failed to list the user folder", e))?
        {
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(name) = ObjectName::from_stored(user_id, &file_name) else {
                continue;
            };
            let meta = match tokio::fs::symlink_metadata(entry.path()).await {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("failed to inspect a file in the user folder", e)),
            };
            let key = ObjectKey::new(format!("{stored_user}/{file_name}"));
            let info = ObjectInfo::new(name, key, meta.len()).with_modified(meta.modified().ok());
            found.push((file_name, info));
        }
        Ok(page_of(found, page))
    }

    /// The file system's figures are not read: every figure is `None`.
    async fn quota(&self) -> Result<Quota> {
        Ok(Quota::default())
    }

    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        _content_type: &str,
    ) -> Result<ObjectKey> {
        self.write_atomically(name, Body::Stream { stream: body, size }, true)
            .await
    }

    async fn presigned_get_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "presigned_get_url",
            "local files have no url",
        ))
    }

    async fn generate_presigned_put_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "generate_presigned_put_url",
            "local files have no url",
        ))
    }

    /// Removes the user's folder (`{root}/{stored user}`, and `{root}/{user_id}`
    /// that versions before the case-safe spelling wrote) and everything in it.
    /// Only a folder whose name matches exactly is taken, even on a file system
    /// that ignores case. Objects are counted as the regular files in the
    /// folder, temporaries of unfinished puts excluded; a symbolic link in the
    /// folder is removed, never followed. A user folder that is itself a
    /// symbolic link is refused.
    async fn purge_user(&self, user_id: &str) -> Result<PurgeReport> {
        validate_part("user_id", user_id)?;
        let stored = crate::stored_name::encode_part(user_id);
        let mut names = vec![stored.clone()];
        if stored != user_id {
            names.push(user_id.to_owned());
        }
        let mut entries = tokio::fs::read_dir(&self.root)
            .await
            .map_err(|e| StorageError::io("failed to list the root directory", e))?;
        let mut report = PurgeReport::default();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io("failed to list the root directory", e))?
        {
            if names.iter().any(|n| entry.file_name() == n.as_str()) {
                report += self.purge_dir(&entry.path()).await?;
            }
        }
        Ok(report)
    }

    async fn health_check(&self) -> Result<()> {
        self.health().await
    }
}

impl LocalBackend {
    /// Removes one user folder and what it holds.
    async fn purge_dir(&self, dir: &Path) -> Result<PurgeReport> {
        Self::refuse_symlink(dir).await?;
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound) => return Ok(PurgeReport::default()),
            Err(e) if matches!(e.kind(), ErrorKind::NotADirectory) => {
                return Err(StorageError::invalid_input("the user folder is not a directory"));
            }
            Err(e) => return Err(StorageError::io("failed to list the user folder", e)),
        };
        let mut report = PurgeReport::default();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| StorageError::io("failed to list the user folder", e))?
        {
            let path = entry.path();
            let meta = match tokio::fs::symlink_metadata(&path).await {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("failed to inspect a file in the user folder", e)),
            };
            let removed = if meta.is_dir() {
                // Never made by this backend; `remove_dir_all` does not follow links.
                tokio::fs::remove_dir_all(&path).await
            } else {
                tokio::fs::remove_file(&path).await
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(StorageError::io("failed to delete a file in the user folder", e)),
            }
            let temporary = entry.file_name().to_string_lossy().contains('#');
            if meta.is_file() && !temporary {
                report += PurgeReport::new(1, meta.len());
            }
        }
        match tokio::fs::remove_dir(dir).await {
            Ok(()) => sync_dir(&self.root).await?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("failed to delete the user folder", e)),
        }
        Ok(report.with_folder(crate::purge::FolderOutcome::Removed))
    }

    async fn health(&self) -> Result<()> {
        let meta = tokio::fs::metadata(&self.root)
            .await
            .map_err(|e| StorageError::io("the root directory is not reachable", e))?;
        if !meta.is_dir() {
            return Err(StorageError::invalid_input("the root is not a directory"));
        }
        if meta.permissions().readonly() {
            return Err(StorageError::PermissionDenied {
                message: "the root directory is read-only".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (tempfile::TempDir, LocalBackend) {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("root")).unwrap();
        (dir, b)
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let (dir, b) = backend();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        for key in [
            "../secret",
            "u/../../secret",
            "/etc/passwd",
            "u/..",
            "..",
            "u/./x",
            "u//x",
            "",
            "u",
            "u/x/y",
            "u\\..\\x/y",
        ] {
            let k = ObjectKey::new(key);
            let err = b.get_object(&k).await.unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{key}: {err:?}");
            assert!(
                matches!(b.delete_object(&k).await, Err(StorageError::InvalidInput { .. })),
                "{key}"
            );
        }
        assert!(dir.path().join("secret").exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_are_refused() {
        let (dir, b) = backend();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f.txt"), b"secret").unwrap();
        // A user folder that links outside the root.
        std::os::unix::fs::symlink(&outside, b.root().join("evil")).unwrap();
        let k = ObjectKey::new("evil/f.txt");
        assert!(matches!(b.get_object(&k).await, Err(StorageError::InvalidInput { .. })));
        assert!(matches!(b.get_stream(&k).await, Err(StorageError::InvalidInput { .. })));
        assert!(matches!(
            b.stat_object(&k).await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert!(matches!(
            b.delete_object(&k).await,
            Err(StorageError::InvalidInput { .. })
        ));
        let name = ObjectName::new("evil", "f", ".txt").unwrap();
        assert!(matches!(
            b.put_object(&name, Bytes::from_static(b"x"), "t").await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert_eq!(std::fs::read(outside.join("f.txt")).unwrap(), b"secret");
        // A file that links outside the root.
        std::fs::create_dir(b.root().join("u")).unwrap();
        std::os::unix::fs::symlink(outside.join("f.txt"), b.root().join("u/f.txt")).unwrap();
        let k = ObjectKey::new("u/f.txt");
        assert!(matches!(b.get_object(&k).await, Err(StorageError::InvalidInput { .. })));
        let name = ObjectName::new("u", "f", ".txt").unwrap();
        assert!(matches!(
            b.put_object(&name, Bytes::from_static(b"x"), "t").await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert_eq!(std::fs::read(outside.join("f.txt")).unwrap(), b"secret");
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_neither_object_nor_temporary_file() {
        let (_dir, b) = backend();
        let name = ObjectName::new("u", "d", ".bin").unwrap();
        // An existing object survives a failed overwrite untouched.
        b.put_object(&name, Bytes::from_static(b"old"), "t").await.unwrap();
        let failing: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"new-")),
            Err(StorageError::transport("source broke", std::io::Error::other("x"))),
        ]));
        assert!(b.put_stream(&name, failing, 10, "t").await.is_err());
        let short: ByteStream = Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"abc"))]));
        assert!(matches!(
            b.put_stream(&name, short, 10, "t").await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert_eq!(
            b.get_object(&ObjectKey::new("u/d.bin")).await.unwrap(),
            Bytes::from_static(b"old")
        );
        let entries: Vec<_> = std::fs::read_dir(b.root().join("u"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("d.bin")]);
    }

    /// A body that yields `abc`, says so on `pulled` when asked for more, and
    /// then never ends.
    fn stalls_after_abc(pulled: tokio::sync::oneshot::Sender<()>) -> ByteStream {
        let stall = futures::stream::once(async move {
            let _ = pulled.send(());
            futures::future::pending::<Result<Bytes>>().await
        });
        Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(b"abc"))]).chain(stall))
    }

    /// `.part` files under the user folder `u`, if it exists.
    fn temporary_files(b: &LocalBackend) -> usize {
        std::fs::read_dir(b.root().join("u")).map_or(0, |d| {
            d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".part"))
                .count()
        })
    }

    #[tokio::test]
    async fn a_cancelled_put_removes_its_temporary_file() {
        let (_dir, b) = backend();
        let name = ObjectName::new("u", "d", "").unwrap();
        let (pulled, wrote) = tokio::sync::oneshot::channel();
        let put = b.put_stream(&name, stalls_after_abc(pulled), 10, "t");
        // Dropped once it has written `abc` to its temporary file.
        tokio::select! {
            r = put => panic!("the put ended: {r:?}"),
            _ = wrote => {}
        }
        let entries = std::fs::read_dir(b.root().join("u")).unwrap().count();
        assert_eq!(entries, 0);
    }

    /// Puts dropped at 100 points over their first 300 µs. Some are dropped
    /// while their temporary file is opened on the blocking pool: that open
    /// ends after the put and its guard are gone (before the fix, 12 to 16 of
    /// the 400 left a `.part` file).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_cancelled_at_any_point_leave_no_temporary_file() {
        let (_dir, b) = backend();
        let b = Arc::new(b);
        for i in 0..400usize {
            let b2 = Arc::clone(&b);
            let (pulled, _wrote) = tokio::sync::oneshot::channel();
            let put = tokio::spawn(async move {
                let name = ObjectName::new("u", &format!("d{i}"), "").unwrap();
                b2.put_stream(&name, stalls_after_abc(pulled), 10, "t").await
            });
            let until = std::time::Instant::now() + Duration::from_micros((i % 100) as u64 * 3);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            put.abort();
            assert!(put.await.unwrap_err().is_cancelled(), "put {i} ended");
        }
        // What the cancelled puts left on the blocking pool finishes.
        let pool = tokio::task::spawn_blocking(|| ());
        tokio::time::sleep(Duration::from_millis(200)).await;
        pool.await.unwrap();
        assert_eq!(temporary_files(&b), 0);
    }

    #[tokio::test]
    async fn stat_reports_md5_and_health_checks_the_root() {
        let (_dir, b) = backend();
        let key = b
            .put_object(
                &ObjectName::new("u", "d", "").unwrap(),
                Bytes::from_static(b"hello"),
                "t",
            )
            .await
            .unwrap();
        let meta = b.stat_object(&key).await.unwrap();
        assert_eq!(meta.size, 5);
        assert_eq!(
            meta.checksum.unwrap().to_provider_string(),
            "5d41402abc4b2a76b9719d911017c592"
        );
        b.health_check().await.unwrap();
        std::fs::remove_dir_all(b.root()).unwrap();
        assert!(b.health_check().await.is_err());
    }
}
