//! What `stat_object` reports.

use crate::checksum::Checksum;

/// Metadata of a stored object.
///
/// ```
/// use storage_core::{Checksum, ObjectMeta};
/// let meta = ObjectMeta::new(5)
///     .with_content_type("text/plain")
///     .with_checksum(Checksum::md5_of(b"hello"));
/// assert_eq!(meta.size, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// The content type given at upload, when the backend keeps it.
    pub content_type: Option<String>,
    /// The provider's content hash, when it reports one.
    pub checksum: Option<Checksum>,
}

impl ObjectMeta {
    /// Metadata with a size and nothing else.
    pub fn new(size: u64) -> Self {
        Self {
            size,
            content_type: None,
            checksum: None,
        }
    }

    /// Sets the content type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets the checksum.
    #[must_use]
    pub fn with_checksum(mut self, checksum: Checksum) -> Self {
        self.checksum = Some(checksum);
        self
    }
}
