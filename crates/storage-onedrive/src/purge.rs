//! Removing everything stored for one user: the `root:/{user}` folder.
//!
//! Deleting a folder item moves it, with its children, to the recycle bin
//! (<https://learn.microsoft.com/graph/api/driveitem-delete>), where the user can
//! restore it; nothing is destroyed permanently. The children are listed first,
//! only to report what goes.

use serde::Deserialize;
use storage_core::stored_name::encode_part;
use storage_core::{FolderOutcome, PurgeReport, Result, StorageError, validate_part};
use url::Url;

use crate::client::{DriveItem, GraphApi};
use crate::error::{read_json, transport};
use crate::folders::{Folders, own_folder};

/// One page of `…/children`.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<DriveItem>,
    #[serde(default, rename = "@odata.nextLink")]
    next: Option<String>,
}

fn bearer(api: &GraphApi) -> Result<String> {
    api.tokens
        .get()
        .map(|t| format!("Bearer {}", t.expose()))
        .ok_or(StorageError::CloudConnection {
            reason: storage_core::ConnectionReason::TokenExpired,
        })
}

async fn get_json<T: serde::de::DeserializeOwned>(api: &GraphApi, url: &str) -> Result<T> {
    api.options
        .retry
        .run(|| async {
            let resp = api
                .http
                .get(url)
                .header(reqwest::header::AUTHORIZATION, bearer(api)?)
                .timeout(api.options.read_timeout)
                .send()
                .await
                .map_err(|e| transport("failed to reach graph", e))?;
            read_json(resp, None).await
        })
        .await
}

/// The folder named exactly `name` at the top of the drive, if any. A path
/// taken by an item whose name differs in case belongs to someone else: `None`.
async fn folder_named(api: &GraphApi, name: &str) -> Result<Option<String>> {
    match api.top_level(name).await? {
        Some(item) if item.named(name) => own_folder(item, name).map(Some),
        _ => Ok(None),
    }
}

/// Files and bytes directly in the folder (the backend makes no subfolders).
async fn count(api: &GraphApi, folder_id: &str) -> Result<PurgeReport> {
    crate::client::check_item_id(folder_id)?;
    let mut url = api.endpoints.graph.clone();
    url.path_segments_mut()
        .map_err(|()| StorageError::invalid_input("the graph endpoint cannot hold a path"))?
        .pop_if_empty()
        .extend(["me", "drive", "items", folder_id, "children"]);
    url.query_pairs_mut()
        .append_pair("$select", "id,size,file,folder")
        .append_pair("$top", "200");
    let mut next = Some(url.to_string());
    let mut report = PurgeReport::default();
    while let Some(page_url) = next.take() {
        // A next link must stay on the configured Graph host.
        let parsed = Url::parse(&page_url).map_err(|_| StorageError::invalid_input("graph sent a bad next link"))?;
        if parsed.origin() != api.endpoints.graph.origin() {
            return Err(StorageError::invalid_input("graph sent a next link to another host"));
        }
        let page: Page = get_json(api, &page_url).await?;
        for item in page.value.iter().filter(|i| i.file.is_some()) {
            report += PurgeReport::new(1, item.size.unwrap_or(0));
        }
        next = page.next;
    }
    Ok(report)
}

/// Moves the user's folders to the recycle bin: the stored spelling, and the raw
/// user id that versions before the case-safe spelling used (`Alice`, now
/// `^alice`), when its name matches exactly.
pub(crate) async fn purge_user(api: &GraphApi, folders: &Folders, user: &str) -> Result<PurgeReport> {
    validate_part("user_id", user)?;
    let stored = encode_part(user);
    let mut names = vec![stored.clone()];
    if stored != user {
        names.push(user.to_owned());
    }
    let mut report = PurgeReport::default();
    for name in &names {
        let Some(folder) = folder_named(api, name).await? else {
            continue;
        };
        report += count(api, &folder).await?;
        // Already gone (404) is `Ok`.
        api.delete(&folder).await?;
        report.folder = report.folder.or_more_cautious(FolderOutcome::Trashed);
        if folder_named(api, name).await?.is_some() {
            return Err(StorageError::Provider {
                status: 200,
                code: Some("purgeIncomplete".to_owned()),
                message: "the user's folder is still listed after the purge; call it again".to_owned(),
            });
        }
    }
    folders.forget(&stored).await;
    Ok(report)
}
