//! The per-user folder: `root:/{stored user}`, found by exact name, created
//! once, cached.
//!
//! OneDrive's paths ignore case, so `root:/alice:` also finds a folder named
//! `Alice`. Versions before the case-safe spelling named folders by the raw user
//! id; such a folder, whose name differs from the one asked for, belongs to
//! another user and is never written into.

use storage_core::slots::Slots;
use storage_core::{Result, StorageError};

use crate::client::{DriveItem, OneDriveClient};

/// Folder ids by stored user name, for one backend and its clones. A user's
/// lock is held across the lookup-or-create, so that the puts of one backend
/// for a new user make one folder, and one user's slow lookup never stalls
/// another user's.
#[derive(Debug, Default)]
pub(crate) struct Folders {
    ids: Slots<String>,
}

impl Folders {
    /// The id of the folder named `user` (a stored name) at the top of the
    /// drive, creating it when missing.
    pub async fn folder_for(&self, api: &OneDriveClient, user: &str) -> Result<String> {
        let slot = self.ids.slot(user);
        let mut cached = slot.lock().await;
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        // Two attempts: another process may create the folder between our
        // lookup and our create, which then answers 409.
        for _ in 0..2 {
            let found = match api.top_level(user).await? {
                Some(item) => Some(item),
                None => api.create_top_folder(user).await?,
            };
            if let Some(item) = found {
                let id = own_folder(item, user)?;
                *cached = Some(id.clone());
                return Ok(id);
            }
        }
        Err(crate::error::folder_race())
    }

    /// The id of the folder named `user`, from the cache or a lookup; `None`
    /// when there is none, or when the path holds another user's folder (one
    /// whose name differs only in case). Nothing is created.
    pub async fn find(&self, api: &OneDriveClient, user: &str) -> Result<Option<String>> {
        let slot = self.ids.slot(user);
        let mut cached = slot.lock().await;
        if let Some(id) = cached.as_ref() {
            return Ok(Some(id.clone()));
        }
        match api.top_level(user).await? {
            Some(item) if item.folder.is_some() && item.named(user) => {
                *cached = Some(item.id.clone());
                Ok(Some(item.id))
            }
            _ => Ok(None),
        }
    }

    /// Forgets a cached folder that turned out to be gone.
    pub async fn forget(&self, user: &str) {
        self.ids.forget(user).await;
    }
}

/// The folder's id, when `item` is a folder named exactly `user`.
pub(crate) fn own_folder(item: DriveItem, user: &str) -> Result<String> {
    if item.folder.is_none() {
        return Err(StorageError::invalid_input(
            "the user's path holds a file, not a folder; it was not made by this library",
        ));
    }
    if !item.named(user) {
        return Err(StorageError::invalid_input(
            "the user's path is taken by a folder whose name differs only in case (made by a version before names were stored case-safe); it belongs to another user, so nothing is written into it",
        ));
    }
    Ok(item.id)
}
