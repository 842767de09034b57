//! Removing everything stored for one user: the `root:/{user_id}` folder.
//!
//! Deleting a folder item deletes its children with it
//! (<https://learn.microsoft.com/graph/api/driveitem-delete>). The children are
//! listed first, only to report what goes.

use serde::Deserialize;
use storage_core::{PurgeReport, Result, StorageError, validate_part};
use url::Url;

use crate::client::{DriveItem, GraphApi};
use crate::error::{read_json, transport};

/// The user's folder item.
#[derive(Debug, Deserialize)]
struct Folder {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    folder: Option<serde_json::Value>,
}

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

/// `{graph}me/drive/root:/{user}:`, the user segment percent-encoded.
fn folder_url(api: &GraphApi, user: &str) -> Result<Url> {
    let mut url = api.endpoints.graph.clone();
    url.path_segments_mut()
        .map_err(|()| StorageError::invalid_input("the graph endpoint cannot hold a path"))?
        .pop_if_empty()
        .extend(["me", "drive", "root:", &format!("{user}:")]);
    Ok(url)
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

/// The user's folder, or `None` when there is none.
async fn user_folder(api: &GraphApi, user: &str) -> Result<Option<Folder>> {
    let mut url = folder_url(api, user)?;
    url.query_pairs_mut().append_pair("$select", "id,name,folder");
    match get_json::<Folder>(api, url.as_str()).await {
        Ok(item) => Ok(Some(item)),
        Err(StorageError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
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

/// Deletes `root:/{user}` and reports the files it held.
pub(crate) async fn purge_user(api: &GraphApi, user: &str) -> Result<PurgeReport> {
    validate_part("user_id", user)?;
    let Some(folder) = user_folder(api, user).await? else {
        return Ok(PurgeReport::default());
    };
    if folder.folder.is_none() {
        return Err(StorageError::invalid_input(
            "the user's path holds a file, not a folder; it was not made by this library",
        ));
    }
    // OneDrive paths ignore case: `root:/Alice` finds `alice`'s folder, which this
    // purge must never take.
    if folder.name != user {
        return Err(StorageError::invalid_input(
            "onedrive matched the user id to a folder whose name differs in case; user ids that differ only in case share a folder on onedrive, so it was not purged",
        ));
    }
    let report = count(api, &folder.id).await?;
    // Already gone (404) is `Ok`.
    api.delete(&folder.id).await?;
    if user_folder(api, user).await?.is_some() {
        return Err(StorageError::Provider {
            status: 200,
            code: Some("purgeIncomplete".to_owned()),
            message: "the user's folder is still listed after the purge; call it again".to_owned(),
        });
    }
    Ok(report)
}
