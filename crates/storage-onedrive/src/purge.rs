//! Removing everything stored for one user: the `root:/{user}` folder.
//!
//! Deleting a folder item moves it, with its children, to the recycle bin
//! (<https://learn.microsoft.com/graph/api/driveitem-delete>), where the user can
//! restore it; nothing is destroyed permanently. The children are listed first,
//! only to report what goes.

use storage_core::stored_name::encode_part;
use storage_core::{FolderOutcome, PurgeReport, Result, validate_part};

use crate::client::OneDriveClient;
use crate::folders::{Folders, own_folder};

/// The folder named exactly `name` at the top of the drive, if any. A path
/// taken by an item whose name differs in case belongs to someone else: `None`.
async fn folder_named(api: &OneDriveClient, name: &str) -> Result<Option<String>> {
    match api.top_level(name).await? {
        Some(item) if item.named(name) => own_folder(item, name).map(Some),
        _ => Ok(None),
    }
}

/// Files and bytes directly in the folder (the backend makes no subfolders).
async fn count(api: &OneDriveClient, folder_id: &str) -> Result<PurgeReport> {
    let mut report = PurgeReport::default();
    for item in api.children(folder_id).await?.iter().filter(|i| i.file.is_some()) {
        report += PurgeReport::new(1, item.size.unwrap_or(0));
    }
    Ok(report)
}

/// Moves the user's folders to the recycle bin: the stored spelling, and the raw
/// user id that versions before the case-safe spelling used (`Alice`, now
/// `^alice`), when its name matches exactly.
pub(crate) async fn purge_user(api: &OneDriveClient, folders: &Folders, user: &str) -> Result<PurgeReport> {
    validate_part("user_id", user)?;
    let stored = encode_part(user);
    let mut names = vec![stored.clone()];
    if stored != user {
        names.push(user.to_owned());
    }
    let mut report = PurgeReport::default();
    // Forgotten before anything goes, too: a purge that fails or is dropped
    // halfway must not leave a deleted folder's id for the next put.
    folders.forget(&stored).await;
    for name in &names {
        let Some(folder) = folder_named(api, name).await? else {
            continue;
        };
        report += count(api, &folder).await?;
        // Already gone (404) is `Ok`.
        api.delete(&folder).await?;
        report.folder = report.folder.or_more_cautious(FolderOutcome::Trashed);
        if folder_named(api, name).await?.is_some() {
            return Err(storage_core::purge::incomplete("the user's folder is"));
        }
    }
    folders.forget(&stored).await;
    Ok(report)
}
