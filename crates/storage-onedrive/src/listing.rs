//! One page of a user's files: the `children` of the user's folder.

use storage_core::stored_name::encode_part;
use storage_core::{Checksum, ObjectInfo, ObjectKey, ObjectName, Page, PageRequest, PageToken, Result, StorageError};

use crate::client::OneDriveClient;
use crate::folders::Folders;

/// The page of `user_id`'s files that `page` asks for.
///
/// Only files whose names read back as a stored name of `user_id` are returned
/// ([`ObjectName::from_stored`]), so temporary uploads and foreign files are
/// left out; a folder whose name differs only in case is another user's and is
/// not listed. The token is Graph's `@odata.nextLink`, followed only on the
/// Graph origin and for this user's folder ([`OneDriveClient::children_page`]).
pub(crate) async fn list_user(
    client: &OneDriveClient,
    folders: &Folders,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page> {
    let stored = encode_part(user_id);
    let Some(folder) = folders.find(client, &stored).await? else {
        return Ok(Page::default());
    };
    let token = page.token().map(PageToken::as_str);
    let (items, next) = match client.children_page(&folder, page.size(), token).await {
        // A `$skiptoken` Graph no longer honours: 400, or 410 Gone as delta links
        // answer (<https://learn.microsoft.com/graph/api/driveitem-delta>).
        Err(StorageError::Provider { status: 400 | 410, .. }) if token.is_some() => {
            return Err(StorageError::invalid_input(
                "graph refused the page token (expired, or from another listing); list from the first page",
            ));
        }
        other => other?,
    };
    let items = items
        .into_iter()
        .filter(|i| i.file.is_some())
        .filter_map(|i| {
            let name = ObjectName::from_stored(user_id, i.name.as_deref()?)?;
            let checksum = i.quick_xor().and_then(Checksum::from_quick_xor_base64);
            let modified = i.last_modified.map(std::time::SystemTime::from);
            Some(
                ObjectInfo::new(name, ObjectKey::new(i.id), i.size.unwrap_or(0))
                    .with_checksum(checksum)
                    .with_modified(modified),
            )
        })
        .collect();
    Ok(Page::new(items, next.map(PageToken::new)))
}
