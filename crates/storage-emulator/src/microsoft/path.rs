//! Graph drive addressing: `/me/drive/items/{id}`, `/me/drive/root:/{path}:`, relative paths
//! under an item, and a relationship (`children`, `content`, `createUploadSession`) after them.
//!
//! Source: github.com/OneDrive/onedrive-api-docs `docs/rest-api/concepts/addressing-driveitems.md`
//! ("everything between the colons is a path"; segments are percent-encoded). A trailing `:`
//! with nothing after it is accepted, as graph-rs-sdk 3.0.1 sends it for
//! `item_by_path(":/a/b.txt:")`.

use crate::http_util::percent_decode;

/// Where an item address starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Base {
    Root,
    Item(String),
}

/// What follows the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rel {
    None,
    Children,
    Content,
    CreateUploadSession,
    Other(String),
}

/// A parsed `/v1.0/...` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// The drive resource itself.
    Drive,
    /// An item, possibly by path relative to `base`.
    Item {
        base: Base,
        /// Decoded path segments after `base` (empty: `base` itself).
        path: Vec<String>,
        rel: Rel,
    },
}

/// Why a path did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressError {
    /// Not a drive path the emulator serves.
    Invalid,
    /// `/drives/{id}` names another drive.
    UnknownDrive,
}

/// Parses the raw (percent-encoded) request path.
pub(crate) fn parse(raw: &str, drive_id: &str) -> Result<Address, AddressError> {
    let rest = raw.strip_prefix("/v1.0/").ok_or(AddressError::Invalid)?;
    let after = if let Some(r) = rest.strip_prefix("me/drive") {
        r
    } else if let Some(r) = rest.strip_prefix("drives/") {
        let end = r.find('/').unwrap_or(r.len());
        if percent_decode(&r[..end]) != drive_id {
            return Err(AddressError::UnknownDrive);
        }
        &r[end..]
    } else if let Some(r) = rest.strip_prefix("drive") {
        r
    } else {
        return Err(AddressError::Invalid);
    };
    if after.is_empty() || after == "/" {
        return Ok(Address::Drive);
    }
    let (base, tail) = if let Some(t) = after.strip_prefix("/root") {
        (Base::Root, t)
    } else if let Some(t) = after.strip_prefix("/items/") {
        let end = t.find(['/', ':']).unwrap_or(t.len());
        let id = percent_decode(&t[..end]);
        if id.is_empty() {
            return Err(AddressError::Invalid);
        }
        (Base::Item(id), &t[end..])
    } else {
        return Err(AddressError::Invalid);
    };
    let (path, rel_text) = if let Some(t) = tail.strip_prefix(':') {
        let (p, after_path) = match t.find(':') {
            Some(i) => (&t[..i], &t[i + 1..]),
            None => (t, ""),
        };
        let segments = p.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
        (segments, after_path)
    } else {
        (Vec::new(), tail)
    };
    let rel = match rel_text.trim_end_matches('/') {
        "" => Rel::None,
        "/children" => Rel::Children,
        "/content" => Rel::Content,
        "/createUploadSession" => Rel::CreateUploadSession,
        other if other.starts_with('/') => Rel::Other(other[1..].to_owned()),
        _ => return Err(AddressError::Invalid),
    };
    Ok(Address::Item { base, path, rel })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(base: Base, path: &[&str], rel: Rel) -> Result<Address, AddressError> {
        Ok(Address::Item {
            base,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            rel,
        })
    }

    #[test]
    fn the_forms_graph_rs_sdk_sends() {
        assert_eq!(parse("/v1.0/me/drive", "d"), Ok(Address::Drive));
        assert_eq!(
            parse("/v1.0/me/drive/items/ITEM!1", "d"),
            item(Base::Item("ITEM!1".into()), &[], Rel::None)
        );
        assert_eq!(
            parse("/v1.0/me/drive/root:/dir%20one/a%20b&c%23d%25e%3Ff[1].txt:", "d"),
            item(Base::Root, &["dir one", "a b&c#d%e?f[1].txt"], Rel::None)
        );
        assert_eq!(
            parse("/v1.0/me/drive/items/P:/a&amp;b%20c%23.txt:/content", "d"),
            item(Base::Item("P".into()), &["a&amp;b c#.txt"], Rel::Content)
        );
        assert_eq!(
            parse("/v1.0/me/drive/root:/big.bin:/createUploadSession", "d"),
            item(Base::Root, &["big.bin"], Rel::CreateUploadSession)
        );
        assert_eq!(
            parse("/v1.0/me/drive/root/children", "d"),
            item(Base::Root, &[], Rel::Children)
        );
        assert_eq!(
            parse("/v1.0/me/drive/root:/a/b", "d"),
            item(Base::Root, &["a", "b"], Rel::None)
        );
        assert_eq!(
            parse("/v1.0/drives/d/items/X/content", "d"),
            item(Base::Item("X".into()), &[], Rel::Content)
        );
        assert_eq!(
            parse("/v1.0/drives/other/items/X", "d"),
            Err(AddressError::UnknownDrive)
        );
        assert_eq!(parse("/v1.0/me/calendar", "d"), Err(AddressError::Invalid));
        assert_eq!(parse("/v1.0/me/drive/rootx", "d"), Err(AddressError::Invalid));
    }
}
