//! Removing everything stored for one user, and nothing the app did not make.
//!
//! With the `drive.file` scope the app sees only the files it created; a file
//! the user dropped into the app's folder through Drive's web page is invisible
//! to it (<https://developers.google.com/workspace/drive/api/guides/api-specific-auth>).
//! But `files.delete` of a folder "permanently deletes … all descendants owned by
//! the user" (<https://developers.google.com/workspace/drive/api/reference/rest/v3/files/delete>),
//! the invisible ones too. So the app's documents are deleted one by one, and the
//! folder, which the app can never prove empty, goes to the trash with whatever
//! it still holds: gone from the user's Drive, restorable for 30 days.

use storage_core::stored_name::encode_part;
use storage_core::{FolderOutcome, PurgeReport, Result, validate_part};

use crate::client::DriveClient;
use crate::folders::{Folders, named};

/// Every folder of `user` under the parent: the stored spelling, and the raw id
/// that versions before the case-safe spelling used (`Alice`, now `^alice`).
async fn user_folders(client: &DriveClient, user: &str) -> Result<Vec<String>> {
    let stored = encode_part(user);
    let mut ids: Vec<String> = named(client, &stored).await?.into_iter().map(|f| f.id).collect();
    if stored != user {
        ids.extend(named(client, user).await?.into_iter().map(|f| f.id));
    }
    Ok(ids)
}

/// Deletes the app's documents in every folder of `user`, trashes the folders,
/// and reports what went.
pub(crate) async fn purge_user(client: &DriveClient, folders: &Folders, user: &str) -> Result<PurgeReport> {
    validate_part("user_id", user)?;
    let mut report = PurgeReport::default();
    // Forgotten before anything goes, too: a purge that fails or is dropped
    // halfway must not leave a trashed folder's id for the next put.
    folders.forget(&encode_part(user)).await;
    let found = user_folders(client, user).await?;
    for folder in &found {
        for f in client.children(folder).await? {
            // The backend makes no subfolders; a folder in there is not the app's to remove.
            if f.is_folder() {
                continue;
            }
            client.delete(&f.id).await?;
            report += PurgeReport::new(1, f.size.unwrap_or(0));
        }
        client.trash(folder).await?;
        report.folder = report.folder.or_more_cautious(FolderOutcome::Trashed);
    }
    folders.forget(&encode_part(user)).await;
    // Proof by listing: no folder of the user's outside the trash, and none of
    // the app's documents left in the ones just trashed.
    let mut left = user_folders(client, user).await?.len();
    for folder in &found {
        left += client
            .list(&format!("{} in parents", crate::client::quote(folder)))
            .await
            .map_or(0, |files| files.iter().filter(|f| !f.is_folder()).count());
    }
    if left > 0 {
        return Err(storage_core::purge::incomplete(&format!(
            "{left} of the user's files are"
        )));
    }
    Ok(report)
}
