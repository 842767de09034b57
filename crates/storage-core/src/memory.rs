//! An in-memory backend, for tests and embedded use.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use url::Url;

use crate::backend::{ByteStream, StorageBackend};
use crate::checksum::Checksum;
use crate::error::{Result, StorageError};
use crate::listing::{ObjectInfo, Page, PageRequest, Quota, page_of};
use crate::meta::ObjectMeta;
use crate::name::{ObjectKey, ObjectName, validate_part};
use crate::purge::PurgeReport;
use crate::range::ByteRange;

/// Reads a body of exactly the declared `size` into memory.
async fn collect_declared(mut body: ByteStream, size: u64) -> Result<Bytes> {
    let expected = usize::try_from(size).map_err(|_| StorageError::invalid_input("size does not fit in memory"))?;
    let mut buf = BytesMut::with_capacity(expected.min(64 * 1024 * 1024));
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if buf.len() + chunk.len() > expected {
            return Err(StorageError::invalid_input(format!(
                "stream is longer than the declared {size} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.len() != expected {
        return Err(StorageError::invalid_input(format!(
            "stream ended after {} of the declared {size} bytes",
            buf.len()
        )));
    }
    Ok(buf.freeze())
}

/// How many bytes a `get_stream` chunk of the memory backend holds.
const STREAM_PIECE: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Entry {
    name: ObjectName,
    body: Bytes,
    content_type: String,
    md5: Checksum,
    modified: SystemTime,
}

/// Objects kept in a map in this process; clones share the map.
///
/// Keys are `{user_id}/{document_id}{extension}` in the stored spelling of
/// [`crate::stored_name`] ([`ObjectName::stored_path`]). Presigned URLs are
/// [`Unsupported`](StorageError::Unsupported).
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<RwLock<HashMap<String, Entry>>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many objects are stored.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-updated map: every
        // write is a single insert or remove, so the poisoned state is still sound.
        self.objects.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Entry>> {
        self.objects.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn entry(&self, key: &ObjectKey) -> Result<Entry> {
        self.read()
            .get(key.as_str())
            .cloned()
            .ok_or_else(|| StorageError::not_found(key.as_str()))
    }

    fn entry_of(name: &ObjectName, body: Bytes, content_type: &str) -> Entry {
        Entry {
            name: name.clone(),
            md5: Checksum::md5_of(&body),
            body,
            content_type: content_type.to_owned(),
            modified: SystemTime::now(),
        }
    }

    fn store(&self, name: &ObjectName, body: Bytes, content_type: &str) -> ObjectKey {
        let key = name.stored_path();
        self.write()
            .insert(key.clone(), Self::entry_of(name, body, content_type));
        ObjectKey::new(key)
    }

    /// Stores under a name that is not stored yet, in one step under the lock.
    fn create(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        let key = name.stored_path();
        match self.write().entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(StorageError::AlreadyExists { key }),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Self::entry_of(name, body, content_type));
                Ok(ObjectKey::new(key))
            }
        }
    }
}

#[async_trait]
impl StorageBackend for MemoryBackend {
    async fn put_object(&self, name: &ObjectName, body: Bytes, content_type: &str) -> Result<ObjectKey> {
        Ok(self.store(name, body, content_type))
    }

    async fn put_stream(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        let body = collect_declared(body, size).await?;
        Ok(self.store(name, body, content_type))
    }

    async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
        Ok(self.entry(key)?.body)
    }

    async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
        let body = self.entry(key)?.body;
        Ok(crate::stream::from_bytes(body, STREAM_PIECE))
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
        self.write().remove(key.as_str());
        Ok(())
    }

    async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
        let e = self.entry(key)?;
        Ok(ObjectMeta::new(e.body.len() as u64)
            .with_content_type(e.content_type)
            .with_checksum(e.md5))
    }

    async fn get_range(&self, key: &ObjectKey, range: ByteRange) -> Result<ByteStream> {
        let body = self.entry(key)?.body;
        let (first, len) = range.resolve(body.len() as u64)?;
        let (first, len) = (usize::try_from(first).unwrap_or(0), usize::try_from(len).unwrap_or(0));
        Ok(crate::stream::from_bytes(body.slice(first..first + len), STREAM_PIECE))
    }

    /// Pages in the order of the stored names; a token is the last stored path returned.
    async fn list_user(&self, user_id: &str, page: &PageRequest) -> Result<Page> {
        validate_part("user_id", user_id)?;
        let entries = self
            .read()
            .iter()
            .filter(|(_, e)| e.name.user_id() == user_id)
            .map(|(key, e)| {
                let info = ObjectInfo::new(e.name.clone(), ObjectKey::new(key.clone()), e.body.len() as u64)
                    .with_checksum(Some(e.md5))
                    .with_modified(Some(e.modified));
                (key.clone(), info)
            })
            .collect();
        Ok(page_of(entries, page))
    }

    /// The bytes held; memory has no limit of its own.
    async fn quota(&self) -> Result<Quota> {
        let used = self.read().values().map(|e| e.body.len() as u64).sum();
        Ok(Quota::new(None, Some(used), None))
    }

    async fn put_stream_if_absent(
        &self,
        name: &ObjectName,
        body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
        // Checked before the body is read, so that a loser reads no body; checked
        // again under the lock by `create`.
        if self.read().contains_key(&name.stored_path()) {
            return Err(StorageError::AlreadyExists {
                key: name.stored_path(),
            });
        }
        let body = collect_declared(body, size).await?;
        self.create(name, body, content_type)
    }

    async fn presigned_get_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "presigned_get_url",
            "objects in memory have no url",
        ))
    }

    async fn generate_presigned_put_url(&self, _key: &ObjectKey, _expires_in: Duration) -> Result<Url> {
        Err(StorageError::unsupported(
            "generate_presigned_put_url",
            "objects in memory have no url",
        ))
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }

    async fn purge_user(&self, user_id: &str) -> Result<PurgeReport> {
        validate_part("user_id", user_id)?;
        let mut report = PurgeReport::default();
        self.write().retain(|_, entry| {
            let theirs = entry.name.user_id() == user_id;
            if theirs {
                report += PurgeReport::new(1, entry.body.len() as u64);
            }
            !theirs
        });
        Ok(report)
    }

    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities::NONE.keeping_content_type()
    }
}
