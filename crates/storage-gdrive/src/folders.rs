//! The per-user folder: found by exact name, created once, cached, never deleted.
//!
//! Drive lets several folders share a name, and processes (or backends with
//! their own caches) that find no folder for a new user each create one. All of
//! them then agree on the *earliest created* folder of that name (ties broken by
//! id), which a folder created later can never displace, and none deletes the
//! folders that lost: another process may have listed before the winner
//! existed, cached a loser, and stored an acknowledged document in it. A later
//! lookup moves what the app can see in a losing folder into the winner and
//! leaves the empty loser; [`crate::purge`] takes every folder of the name.

use storage_core::Result;
use storage_core::slots::Slots;

use crate::client::{DriveClient, DriveFile, Kind};

/// Folder ids by stored user name, for one backend and its clones. A user's
/// lock is held across the lookup-or-create, so that the puts of one backend
/// for a new user make one folder, and one user's slow lookup never stalls
/// another user's.
#[derive(Debug, Default)]
pub(crate) struct Folders {
    ids: Slots<String>,
}

impl Folders {
    /// The id of the folder named `user` (a stored name) under the configured
    /// parent, creating one when none exists.
    pub async fn folder_for(&self, client: &DriveClient, user: &str) -> Result<String> {
        let slot = self.ids.slot(user);
        let mut cached = slot.lock().await;
        if let Some(id) = cached.as_ref() {
            return Ok(id.clone());
        }
        let mut found = named(client, user).await?;
        if found.is_empty() {
            client.create_folder(&client.options.parent_folder, user).await?;
            // Every folder of the name, ours included: another process may have
            // made one first, and then the earliest wins.
            found = named(client, user).await?;
        }
        let Some((winner, losers)) = split_winner(found) else {
            return Err(crate::error::folder_not_listed());
        };
        tidy(client, &winner, &losers).await;
        *cached = Some(winner.id.clone());
        Ok(winner.id)
    }

    /// Forgets a cached folder that turned out to be gone.
    pub async fn forget(&self, user: &str) {
        self.ids.forget(user).await;
    }
}

/// Every folder named exactly `user` under the configured parent, not trashed.
pub(crate) async fn named(client: &DriveClient, user: &str) -> Result<Vec<DriveFile>> {
    client
        .find_named(&[client.options.parent_folder.as_str()], user, Kind::Folder)
        .await
}

/// The earliest created folder, and the others.
fn split_winner(mut found: Vec<DriveFile>) -> Option<(DriveFile, Vec<DriveFile>)> {
    found.sort_by(DriveFile::creation_order);
    let mut all = found.into_iter();
    let winner = all.next()?;
    Some((winner, all.collect()))
}

/// Moves the documents the app can see out of losing folders into the winner.
/// Best effort: a document left behind is still readable by its key, and the
/// next lookup tries again. The losing folders stay, empty of the app's files.
async fn tidy(client: &DriveClient, winner: &DriveFile, losers: &[DriveFile]) {
    for loser in losers {
        let Ok(children) = client.children(&loser.id).await else {
            continue;
        };
        for f in children.iter().filter(|f| !f.is_folder()) {
            let _ = client.move_file(&f.id, &loser.id, &winner.id).await;
        }
    }
}
