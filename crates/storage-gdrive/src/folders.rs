//! The per-user folder: found by name, created once, cached.

use std::collections::HashMap;

use storage_core::Result;
use tokio::sync::Mutex;

use crate::client::{DriveClient, FOLDER_MIME, quote};

/// Folder ids by user id, for one backend and its clones.
#[derive(Debug, Default)]
pub(crate) struct Folders {
    /// Held across the lookup-or-create so that concurrent puts for a new user
    /// make one folder, not several.
    ids: Mutex<HashMap<String, String>>,
}

impl Folders {
    /// The id of `user`'s folder under the configured parent, creating it when missing.
    ///
    /// Drive allows several folders of one name. When two processes race to
    /// create one, each then lists again and keeps the folder with the smallest
    /// id, deleting its own if that is not the one; both end up on the same folder.
    pub async fn folder_for(&self, client: &DriveClient, user: &str) -> Result<String> {
        let mut ids = self.ids.lock().await;
        if let Some(id) = ids.get(user) {
            return Ok(id.clone());
        }
        let id = match lookup(client, user).await? {
            Some(id) => id,
            None => {
                let mine = client.create_folder(&client.options.parent_folder, user).await?.id;
                match lookup(client, user).await? {
                    Some(winner) if winner != mine => {
                        // Best effort: an empty duplicate left behind holds no data.
                        let _ = client.delete(&mine).await;
                        winner
                    }
                    _ => mine,
                }
            }
        };
        ids.insert(user.to_owned(), id.clone());
        Ok(id)
    }

    /// Forgets a cached folder that turned out to be gone.
    pub async fn forget(&self, user: &str) {
        self.ids.lock().await.remove(user);
    }
}

/// The user's folder with the smallest id, if any exists.
async fn lookup(client: &DriveClient, user: &str) -> Result<Option<String>> {
    let q = format!(
        "name = {} and {} in parents and trashed = false",
        quote(user),
        quote(&client.options.parent_folder)
    );
    let found = client.list(&q).await?;
    Ok(found
        .into_iter()
        .filter(|f| f.mime_type.as_deref() == Some(FOLDER_MIME))
        .map(|f| f.id)
        .min())
}
