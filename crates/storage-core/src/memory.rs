//! An in-memory backend, for tests and embedded use.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use url::Url;

use crate::backend::{ByteStream, StorageBackend};
use crate::checksum::Checksum;
use crate::error::{Result, StorageError};
use crate::meta::ObjectMeta;
use crate::name::{ObjectKey, ObjectName, validate_part};
use crate::purge::PurgeReport;

/// How many bytes a `get_stream` chunk of the memory backend holds.
const STREAM_PIECE: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Entry {
    body: Bytes,
    content_type: String,
    md5: Checksum,
}

/// Objects kept in a map in this process; clones share the map.
///
/// Keys are `{user_id}/{document_id}{extension}`. Presigned URLs are
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

    fn store(&self, name: &ObjectName, body: Bytes, content_type: &str) -> ObjectKey {
        let key = name.path();
        let md5 = Checksum::md5_of(&body);
        self.write().insert(
            key.clone(),
            Entry {
                body,
                content_type: content_type.to_owned(),
                md5,
            },
        );
        ObjectKey::new(key)
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
        mut body: ByteStream,
        size: u64,
        content_type: &str,
    ) -> Result<ObjectKey> {
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
        Ok(self.store(name, buf.freeze(), content_type))
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
        // A user id holds no `/`, so this prefix matches that user's keys only.
        let prefix = format!("{user_id}/");
        let mut report = PurgeReport::default();
        self.write().retain(|key, entry| {
            let theirs = key.starts_with(&prefix);
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
