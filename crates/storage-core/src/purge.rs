//! What [`StorageBackend::purge_user`](crate::StorageBackend::purge_user) reports.

use std::ops::AddAssign;

/// What one `purge_user` call removed.
///
/// A purge is idempotent: a second call, or one after an interrupted call,
/// removes what is left and reports only that, so a fully purged user reports
/// zero objects and zero bytes.
///
/// ```
/// use storage_core::PurgeReport;
///
/// let mut total = PurgeReport::new(2, 10);
/// total += PurgeReport::new(1, 5);
/// assert_eq!((total.objects, total.bytes), (3, 15));
/// assert!(PurgeReport::default().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Objects removed.
    pub objects: u64,
    /// Bytes those objects held.
    pub bytes: u64,
}

impl PurgeReport {
    /// A report of `objects` objects holding `bytes` bytes.
    pub const fn new(objects: u64, bytes: u64) -> Self {
        Self { objects, bytes }
    }

    /// Whether nothing was removed.
    pub const fn is_empty(&self) -> bool {
        self.objects == 0 && self.bytes == 0
    }
}

impl AddAssign for PurgeReport {
    fn add_assign(&mut self, other: Self) {
        self.objects += other.objects;
        self.bytes += other.bytes;
    }
}

impl std::fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} objects, {} bytes removed", self.objects, self.bytes)
    }
}
