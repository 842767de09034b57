//! What [`StorageBackend::purge_user`](crate::StorageBackend::purge_user) reports.

use std::ops::AddAssign;

use crate::error::StorageError;

/// What a purge did with the user's folder.
///
/// A purge removes the application's own objects one by one; the folder they
/// lived in may also hold files the application did not create and, under
/// Drive's `drive.file` scope, cannot even see. It is never destroyed with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FolderOutcome {
    /// There was no folder to deal with (none existed, or the backend has none).
    #[default]
    Absent,
    /// The folder was removed: it was provably empty once the objects were gone
    /// (the local backend).
    Removed,
    /// The folder went to the provider's trash (Drive's trash, OneDrive's recycle
    /// bin) with anything in it the application could not see or did not make;
    /// the user can restore it for the provider's retention period (30 days on
    /// Drive, 93 days on OneDrive).
    Trashed,
    /// The folder was left in place, because it is not provably empty.
    Kept,
}

/// A purge that finished its deletes while the provider still lists what it
/// deleted (`what`, e.g. "3 of the user's files"): nothing is reported done
/// that the listing contradicts, and calling the purge again is safe.
///
/// ```
/// let e = storage_core::purge::incomplete("the user's folder is");
/// assert!(e.to_string().contains("still listed"));
/// ```
#[must_use]
pub fn incomplete(what: &str) -> StorageError {
    StorageError::Provider {
        status: 200,
        code: Some("purgeIncomplete".to_owned()),
        message: format!("{what} still listed after the purge; call it again"),
    }
}

impl FolderOutcome {
    /// The more cautious of two outcomes, for a report that covers several
    /// folders: kept over trashed over removed over absent.
    #[must_use]
    pub const fn or_more_cautious(self, other: Self) -> Self {
        const fn rank(o: FolderOutcome) -> u8 {
            match o {
                FolderOutcome::Absent => 0,
                FolderOutcome::Removed => 1,
                FolderOutcome::Trashed => 2,
                FolderOutcome::Kept => 3,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }
}

impl std::fmt::Display for FolderOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Absent => "no folder",
            Self::Removed => "folder removed",
            Self::Trashed => "folder moved to the trash",
            Self::Kept => "folder kept",
        })
    }
}

/// What one `purge_user` call removed.
///
/// A purge is idempotent: a second call, or one after an interrupted call,
/// removes what is left and reports only that, so a fully purged user reports
/// zero objects and zero bytes.
///
/// ```
/// use storage_core::{FolderOutcome, PurgeReport};
///
/// let mut total = PurgeReport::new(2, 10).with_folder(FolderOutcome::Removed);
/// total += PurgeReport::new(1, 5).with_folder(FolderOutcome::Trashed);
/// assert_eq!((total.objects, total.bytes), (3, 15));
/// assert_eq!(total.folder, FolderOutcome::Trashed);
/// assert!(PurgeReport::default().is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Objects removed.
    pub objects: u64,
    /// Bytes those objects held.
    pub bytes: u64,
    /// What happened to the user's folder.
    pub folder: FolderOutcome,
}

impl PurgeReport {
    /// A report of `objects` objects holding `bytes` bytes.
    pub const fn new(objects: u64, bytes: u64) -> Self {
        Self {
            objects,
            bytes,
            folder: FolderOutcome::Absent,
        }
    }

    /// The same report, saying what happened to the folder.
    #[must_use]
    pub const fn with_folder(mut self, folder: FolderOutcome) -> Self {
        self.folder = folder;
        self
    }

    /// `(objects, bytes)`, what two purges of the same data agree on whatever
    /// each did with the folder.
    pub const fn counts(&self) -> (u64, u64) {
        (self.objects, self.bytes)
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
        self.folder = self.folder.or_more_cautious(other.folder);
    }
}

impl std::fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} objects, {} bytes removed; {}",
            self.objects, self.bytes, self.folder
        )
    }
}
