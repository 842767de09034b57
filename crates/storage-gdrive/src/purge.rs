//! Removing everything stored for one user: the per-user folder and its files.
//!
//! `files.delete` of a folder the user owns deletes it permanently, without the
//! trash, together with every descendant the user owns
//! (<https://developers.google.com/workspace/drive/api/reference/rest/v3/files/delete>).
//! With the `drive.file` scope every file this crate made is owned by the user, so
//! one delete per folder is the whole purge; a listing afterwards proves it.

use storage_core::{PurgeReport, Result, StorageError, validate_part};

use crate::client::{DriveClient, DriveFile, FOLDER_MIME, quote};
use crate::folders::Folders;

/// Every folder named `user` under the configured parent, trashed ones included:
/// Drive allows several of one name (two processes racing to create it).
async fn user_folders(client: &DriveClient, user: &str) -> Result<Vec<String>> {
    let q = format!(
        "name = {} and {} in parents and mimeType = {}",
        quote(user),
        quote(&client.options.parent_folder),
        quote(FOLDER_MIME)
    );
    Ok(client
        .list(&q)
        .await?
        .into_iter()
        // Exact names only, should the service match names loosely: a purge of
        // `Alice` must never take `alice`'s folder.
        .filter(|f| f.mime_type.as_deref() == Some(FOLDER_MIME) && f.name.as_deref() == Some(user))
        .map(|f| f.id)
        .collect())
}

/// Files in `folder`, trashed ones included; a folder that is gone has none.
async fn children(client: &DriveClient, folder: &str) -> Result<Vec<DriveFile>> {
    match client.list(&format!("{} in parents", quote(folder))).await {
        Err(StorageError::NotFound { .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// Deletes every folder of `user` under the parent and reports the files they held.
pub(crate) async fn purge_user(client: &DriveClient, folders: &Folders, user: &str) -> Result<PurgeReport> {
    validate_part("user_id", user)?;
    let mut report = PurgeReport::default();
    let found = user_folders(client, user).await?;
    for folder in &found {
        for f in children(client, folder).await? {
            if f.mime_type.as_deref() != Some(FOLDER_MIME) {
                report += PurgeReport::new(1, f.size.unwrap_or(0));
            }
        }
        client.delete(folder).await?;
    }
    folders.forget(user).await;
    // Proof by listing: no folder of that name, and nothing left in the deleted ones.
    let mut left = user_folders(client, user).await?.len();
    for folder in &found {
        left += children(client, folder).await?.len();
    }
    if left > 0 {
        return Err(StorageError::Provider {
            status: 200,
            code: Some("purgeIncomplete".to_owned()),
            message: format!("{left} files of the user are still listed after the purge; call it again"),
        });
    }
    Ok(report)
}
