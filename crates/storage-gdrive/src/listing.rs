//! One page of a user's documents: `files.list` over the user's folders.

use storage_core::stored_name::encode_part;
use storage_core::{Checksum, ObjectInfo, ObjectKey, ObjectName, Page, PageRequest, PageToken, Result, StorageError};

use crate::client::{DriveClient, FOLDER_MIME, quote};
use crate::folders::named;

/// Separates the stored user from Drive's `nextPageToken` in a page token.
/// Stored user names never hold `:` (the [`ObjectName`] rules forbid it).
const TOKEN_SEPARATOR: char = ':';

/// The page of `user`'s documents that `page` asks for.
///
/// The documents of every folder of the stored name are listed (a race can
/// make several, [`crate::folders`]); only files whose names read back as a
/// stored name of `user` are returned ([`ObjectName::from_stored`]), so
/// temporary and foreign files are left out. Files the user put in the folder
/// are invisible under `drive.file` and never listed.
pub(crate) async fn list_user(client: &DriveClient, user: &str, page: &PageRequest) -> Result<Page> {
    let stored = encode_part(user);
    let token = match page.token() {
        None => None,
        Some(t) => Some(drive_token(t, &stored)?),
    };
    let folders = named(client, &stored).await?;
    if folders.is_empty() {
        return Ok(Page::default());
    }
    let within = folders
        .iter()
        .map(|f| format!("{} in parents", quote(&f.id)))
        .collect::<Vec<_>>()
        .join(" or ");
    let q = format!("({within}) and mimeType != {} and trashed = false", quote(FOLDER_MIME));
    let (files, next) = match client.list_page(&q, page.size(), token).await {
        // Drive answers a page token it no longer honours (or never issued) with 400.
        Err(StorageError::Provider { status: 400, .. }) if token.is_some() => {
            return Err(StorageError::invalid_input(
                "drive refused the page token (expired, or from another listing); list from the first page",
            ));
        }
        other => other?,
    };
    let items = files
        .into_iter()
        .filter(|f| f.is_document())
        .filter_map(|f| {
            let name = ObjectName::from_stored(user, f.name.as_deref()?)?;
            let info = ObjectInfo::new(name, ObjectKey::new(f.id), f.size.unwrap_or(0))
                .with_checksum(f.md5_checksum.as_deref().and_then(Checksum::from_md5_hex))
                .with_modified(f.modified_time.map(std::time::SystemTime::from));
            Some(info)
        })
        .collect();
    let next = next.map(|t| PageToken::new(format!("{stored}{TOKEN_SEPARATOR}{t}")));
    Ok(Page::new(items, next))
}

/// Drive's token inside a page token, which must have been issued for `stored`.
fn drive_token<'a>(token: &'a PageToken, stored: &str) -> Result<&'a str> {
    match token.as_str().split_once(TOKEN_SEPARATOR) {
        Some((user, rest)) if user == stored && !rest.is_empty() => Ok(rest),
        _ => Err(StorageError::invalid_input(
            "the page token was not issued for this user's listing",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_user() {
        let t = PageToken::new("^alice:abc:def");
        assert_eq!(drive_token(&t, "^alice").unwrap(), "abc:def");
        assert!(drive_token(&t, "alice").is_err());
        assert!(drive_token(&PageToken::new("^alice:"), "^alice").is_err());
        assert!(drive_token(&PageToken::new("nothing"), "nothing").is_err());
    }
}
