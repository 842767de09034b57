//! OneDrive's state: the item tree, upload sessions and download keys.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use storage_core::Checksum;

use crate::http_util::{random_id, random_upper, random_uuid, rfc3339_secs};
use crate::info::GraphItemInfo;

/// The emulated drive's `driveType`. Business is chosen because the Graph docs list
/// `quickXorHash` as the hash available there
/// (<https://learn.microsoft.com/graph/api/resources/hashes>).
pub(crate) const DRIVE_TYPE: &str = "business";

/// Quota of the emulated drive (1 TiB).
/// The default `quota.total` of the Graph drive: 1 TiB, OneDrive's usual plan.
pub(crate) const DRIVE_QUOTA: u64 = 1 << 40;

/// One file or folder.
#[derive(Debug, Clone)]
pub(crate) struct GraphItem {
    pub id: String,
    pub name: String,
    pub parent: Option<String>,
    pub folder: bool,
    pub content: Bytes,
    pub mime_type: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub version: u64,
    pub guid: String,
    pub quick_xor: String,
    pub download_key: String,
    pub seq: u64,
}

/// Why a rename or move was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RenameError {
    NotFound,
    Root,
    Conflict,
}

/// An upload session.
#[derive(Debug)]
pub(crate) struct GraphSession {
    pub parent: String,
    pub name: String,
    pub total: Option<u64>,
    pub data: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub conflict: String,
}

/// How a name clash is resolved (`@microsoft.graph.conflictBehavior`,
/// <https://learn.microsoft.com/graph/api/resources/driveitem> instance attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflict {
    Fail,
    Replace,
    Rename,
}

impl Conflict {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "fail" => Some(Self::Fail),
            "replace" => Some(Self::Replace),
            "rename" => Some(Self::Rename),
            _ => None,
        }
    }
}

/// Result of writing a file.
#[derive(Debug)]
pub(crate) enum PutOutcome {
    Created(GraphItem),
    Replaced(GraphItem),
    NameConflict,
    NotAFile,
}

/// All Graph state.
#[derive(Debug)]
pub(crate) struct GraphStore {
    items: HashMap<String, GraphItem>,
    root_id: String,
    drive_id: String,
    pub sessions: HashMap<String, GraphSession>,
    downloads: HashMap<String, String>,
    seq: u64,
    /// Signs download URLs so they can expire without server-side state per URL.
    secret: String,
    download_lifetime: chrono::Duration,
}

/// Why a download URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DownloadError {
    /// No item has this key (deleted, or its content was replaced).
    NotFound,
    /// The signature is missing or wrong, or the URL has expired.
    Unauthorized,
}

fn new_item_id() -> String {
    // Business item ids look like `01NKDM7HMOJTVYMDOSXFDK2QJDXCDI3WUK`
    // (https://learn.microsoft.com/graph/api/driveitem-get examples).
    format!("01{}", random_upper(32))
}

impl GraphStore {
    pub(crate) fn new(download_lifetime: chrono::Duration) -> Self {
        let root_id = new_item_id();
        let now = Utc::now();
        let root = GraphItem {
            id: root_id.clone(),
            name: "root".to_owned(),
            parent: None,
            folder: true,
            content: Bytes::new(),
            mime_type: String::new(),
            created: now,
            modified: now,
            version: 0,
            guid: random_uuid().to_uppercase(),
            quick_xor: String::new(),
            download_key: String::new(),
            seq: 0,
        };
        let mut items = HashMap::new();
        items.insert(root_id.clone(), root);
        Self {
            items,
            root_id,
            drive_id: format!("b!{}", random_id(32)),
            sessions: HashMap::new(),
            downloads: HashMap::new(),
            seq: 0,
            secret: random_id(32),
            download_lifetime,
        }
    }

    fn sign(&self, key: &str, expires: i64) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!("{}|{key}|{expires}", self.secret).as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    /// A pre-authenticated download URL for a file, valid for the configured lifetime
    /// (`@microsoft.graph.downloadUrl` is valid for one hour, per
    /// <https://learn.microsoft.com/graph/api/resources/driveitem>; the `tempauth` query
    /// parameter mirrors the real URLs, github.com/rclone/rclone `backend/onedrive/onedrive.go`).
    pub(crate) fn download_url(&self, item: &GraphItem, content_base: &str) -> String {
        // Milliseconds: whole seconds would cut up to one off the lifetime.
        let expires = (Utc::now() + self.download_lifetime).timestamp_millis();
        format!(
            "{content_base}dl/{}?tempauth={expires}.{}",
            item.download_key,
            self.sign(&item.download_key, expires)
        )
    }

    /// Checks a download URL's key and `tempauth`.
    pub(crate) fn check_download(&self, key: &str, tempauth: Option<&str>) -> Result<&GraphItem, DownloadError> {
        let item = self.by_download_key(key).ok_or(DownloadError::NotFound)?;
        let (expires, sig) = tempauth
            .and_then(|t| t.split_once('.'))
            .ok_or(DownloadError::Unauthorized)?;
        let expires: i64 = expires.parse().map_err(|_| DownloadError::Unauthorized)?;
        if sig != self.sign(key, expires) || expires <= Utc::now().timestamp_millis() {
            return Err(DownloadError::Unauthorized);
        }
        Ok(item)
    }

    pub(crate) fn root_id(&self) -> &str {
        &self.root_id
    }

    pub(crate) fn drive_id(&self) -> &str {
        &self.drive_id
    }

    pub(crate) fn get(&self, id: &str) -> Option<&GraphItem> {
        self.items.get(id)
    }

    /// A child by name; names are case-insensitive on OneDrive
    /// (github.com/rclone/rclone `docs/content/onedrive.md`, "Case insensitivity").
    pub(crate) fn child(&self, parent: &str, name: &str) -> Option<&GraphItem> {
        let lower = name.to_lowercase();
        self.items
            .values()
            .find(|i| i.parent.as_deref() == Some(parent) && i.name.to_lowercase() == lower)
    }

    /// Resolves a path relative to `base`; `None` when a component is missing.
    pub(crate) fn resolve(&self, base: &str, segments: &[String]) -> Option<String> {
        let mut current = self.items.get(base)?.id.clone();
        for seg in segments {
            current = self.child(&current, seg)?.id.clone();
        }
        Some(current)
    }

    /// Resolves or creates the folders of `segments` under `base`.
    pub(crate) fn ensure_folders(&mut self, base: &str, segments: &[String]) -> Option<String> {
        let mut current = self.items.get(base)?.id.clone();
        for seg in segments {
            current = match self.child(&current, seg) {
                Some(item) if item.folder => item.id.clone(),
                Some(_) => return None,
                None => self.create_folder(&current, seg).id,
            };
        }
        Some(current)
    }

    pub(crate) fn create_folder(&mut self, parent: &str, name: &str) -> GraphItem {
        let item = self.new_item(parent, name, true, Bytes::new(), "");
        self.items.insert(item.id.clone(), item.clone());
        item
    }

    fn new_item(&mut self, parent: &str, name: &str, folder: bool, content: Bytes, mime: &str) -> GraphItem {
        self.seq += 1;
        let now = Utc::now();
        let quick_xor = if folder {
            String::new()
        } else {
            Checksum::quick_xor_of(&content).to_provider_string()
        };
        let download_key = if folder { String::new() } else { random_id(40) };
        let item = GraphItem {
            id: new_item_id(),
            name: name.to_owned(),
            parent: Some(parent.to_owned()),
            folder,
            content,
            mime_type: mime.to_owned(),
            created: now,
            modified: now,
            version: 1,
            guid: random_uuid().to_uppercase(),
            quick_xor,
            download_key: download_key.clone(),
            seq: self.seq,
        };
        if !folder {
            self.downloads.insert(download_key, item.id.clone());
        }
        item
    }

    /// Writes a file named `name` under `parent`.
    pub(crate) fn put_file(
        &mut self,
        parent: &str,
        name: &str,
        content: Bytes,
        mime: &str,
        conflict: Conflict,
    ) -> PutOutcome {
        let existing = self.child(parent, name).map(|i| (i.id.clone(), i.folder));
        match (existing, conflict) {
            (Some(_), Conflict::Fail) => PutOutcome::NameConflict,
            (Some((_, true)), Conflict::Replace) => PutOutcome::NotAFile,
            (Some((id, false)), Conflict::Replace) => match self.replace_content(&id, content, mime) {
                Some(item) => PutOutcome::Replaced(item),
                None => PutOutcome::NotAFile,
            },
            (Some(_), Conflict::Rename) => {
                let name = self.free_name(parent, name);
                self.put_new(parent, &name, content, mime)
            }
            (None, _) => self.put_new(parent, name, content, mime),
        }
    }

    fn put_new(&mut self, parent: &str, name: &str, content: Bytes, mime: &str) -> PutOutcome {
        let item = self.new_item(parent, name, false, content, mime);
        self.items.insert(item.id.clone(), item.clone());
        self.touch(parent);
        PutOutcome::Created(item)
    }

    /// `name 1.ext`, `name 2.ext`, … : the first free variant (the numbering scheme of
    /// `rename` is UNCONFIRMED).
    fn free_name(&self, parent: &str, name: &str) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        (1..)
            .map(|n| format!("{stem} {n}{ext}"))
            .find(|candidate| self.child(parent, candidate).is_none())
            .unwrap_or_else(|| name.to_owned())
    }

    /// Replaces a file's content; a new version and a new download key.
    pub(crate) fn replace_content(&mut self, id: &str, content: Bytes, mime: &str) -> Option<GraphItem> {
        let old_key = {
            let item = self.items.get(id)?;
            if item.folder {
                return None;
            }
            item.download_key.clone()
        };
        self.downloads.remove(&old_key);
        let key = random_id(40);
        self.downloads.insert(key.clone(), id.to_owned());
        let item = self.items.get_mut(id)?;
        item.quick_xor = Checksum::quick_xor_of(&content).to_provider_string();
        item.content = content;
        if !mime.is_empty() {
            item.mime_type = mime.to_owned();
        }
        item.modified = Utc::now();
        item.version += 1;
        item.download_key = key;
        let item = item.clone();
        if let Some(parent) = item.parent.clone() {
            self.touch(&parent);
        }
        Some(item)
    }

    fn touch(&mut self, id: &str) {
        if let Some(item) = self.items.get_mut(id) {
            item.modified = Utc::now();
            item.version += 1;
        }
    }

    /// The item's `eTag`, as `item_json` shows it.
    pub(crate) fn etag(item: &GraphItem) -> String {
        format!("\"{{{}}},{}\"", item.guid, item.version)
    }

    /// Renames an item and, with `parent`, moves it (`PATCH /items/{id}`,
    /// <https://learn.microsoft.com/graph/api/driveitem-update> and
    /// <https://learn.microsoft.com/graph/api/driveitem-move>). A sibling of the same name,
    /// compared without regard to case, is a conflict. Whether
    /// `@microsoft.graph.conflictBehavior=replace` lets a rename replace that sibling is
    /// UNCONFIRMED (the docs document it for uploads and copies only), so the emulator
    /// always answers a clash with 409 `nameAlreadyExists`, the reading a client cannot
    /// lean on.
    pub(crate) fn rename(&mut self, id: &str, name: &str, parent: Option<&str>) -> Result<GraphItem, RenameError> {
        let item = self.items.get(id).ok_or(RenameError::NotFound)?;
        let parent = match parent {
            Some(p) => p.to_owned(),
            None => item.parent.clone().ok_or(RenameError::Root)?,
        };
        if !self.items.get(&parent).is_some_and(|p| p.folder) {
            return Err(RenameError::NotFound);
        }
        if self.child(&parent, name).is_some_and(|other| other.id != id) {
            return Err(RenameError::Conflict);
        }
        let old_parent = item.parent.clone();
        let item = self.items.get_mut(id).ok_or(RenameError::NotFound)?;
        item.name = name.to_owned();
        item.parent = Some(parent.clone());
        item.modified = Utc::now();
        item.version += 1;
        let item = item.clone();
        self.touch(&parent);
        if let Some(old) = old_parent.filter(|o| *o != parent) {
            self.touch(&old);
        }
        Ok(item)
    }

    /// Deletes an item and its descendants; the root cannot be deleted.
    pub(crate) fn delete(&mut self, id: &str) -> bool {
        if id == self.root_id || !self.items.contains_key(id) {
            return false;
        }
        let mut doomed = vec![id.to_owned()];
        while let Some(next) = doomed.pop() {
            if let Some(item) = self.items.remove(&next) {
                self.downloads.remove(&item.download_key);
            }
            doomed.extend(
                self.items
                    .values()
                    .filter(|i| i.parent.as_deref() == Some(next.as_str()))
                    .map(|i| i.id.clone()),
            );
        }
        true
    }

    /// Children of a folder in creation order.
    pub(crate) fn children(&self, id: &str) -> Vec<&GraphItem> {
        let mut out: Vec<&GraphItem> = self
            .items
            .values()
            .filter(|i| i.parent.as_deref() == Some(id))
            .collect();
        out.sort_by_key(|i| i.seq);
        out
    }

    /// The item a download key points at.
    pub(crate) fn by_download_key(&self, key: &str) -> Option<&GraphItem> {
        self.downloads.get(key).and_then(|id| self.items.get(id))
    }

    /// `/dir/file.txt` (`/` for the root).
    pub(crate) fn path_of(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut current = self.items.get(id);
        while let Some(item) = current {
            let Some(parent) = &item.parent else { break };
            names.push(item.name.clone());
            current = self.items.get(parent);
        }
        names.reverse();
        format!("/{}", names.join("/"))
    }

    fn subtree_size(&self, id: &str) -> u64 {
        self.items
            .get(id)
            .map(|i| {
                if i.folder {
                    self.children(id).iter().map(|c| self.subtree_size(&c.id)).sum()
                } else {
                    i.content.len() as u64
                }
            })
            .unwrap_or(0)
    }

    /// Bytes used.
    pub(crate) fn used(&self) -> u64 {
        self.items.values().map(|i| i.content.len() as u64).sum()
    }

    /// The driveItem resource (<https://learn.microsoft.com/graph/api/resources/driveitem>).
    ///
    /// `size` is a JSON **number** (Int64) on Graph, unlike Drive. `file.hashes.quickXorHash`
    /// is base64 (<https://learn.microsoft.com/graph/api/resources/hashes>).
    /// `@microsoft.graph.downloadUrl` is a pre-authenticated URL on another host that needs no
    /// `Authorization` (<https://learn.microsoft.com/graph/api/driveitem-get-content>).
    pub(crate) fn item_json(&self, item: &GraphItem, content_base: &str) -> Value {
        let mut v = json!({
            "id": item.id,
            "name": item.name,
            "size": self.subtree_size(&item.id),
            "createdDateTime": rfc3339_secs(item.created),
            "lastModifiedDateTime": rfc3339_secs(item.modified),
            "eTag": Self::etag(item),
            "webUrl": format!("https://emulator.invalid/personal/user/Documents{}", self.path_of(&item.id)),
            "fileSystemInfo": {
                "createdDateTime": rfc3339_secs(item.created),
                "lastModifiedDateTime": rfc3339_secs(item.modified),
            },
        });
        match &item.parent {
            Some(parent) => {
                let parent_path = self.path_of(parent);
                let path = if parent_path == "/" {
                    "/drive/root:".to_owned()
                } else {
                    format!("/drive/root:{parent_path}")
                };
                v["parentReference"] = json!({
                    "driveId": self.drive_id,
                    "driveType": DRIVE_TYPE,
                    "id": parent,
                    "path": path,
                });
            }
            None => {
                v["root"] = json!({});
                v["parentReference"] = json!({"driveId": self.drive_id, "driveType": DRIVE_TYPE});
            }
        }
        if item.folder {
            v["folder"] = json!({"childCount": self.children(&item.id).len()});
        } else {
            // cTag is not returned for folders on Business (driveitem resource docs).
            v["cTag"] = json!(format!("\"c:{{{}}},{}\"", item.guid, item.version));
            // OneDrive omits the hash of an empty file: `"hashes": {}` (seen on OneDrive for
            // Business, github.com/OneDrive/onedrive-api-docs issue 1704; clients work around
            // it, github.com/abraunegg/onedrive PR 2436). The emulator does the same.
            let hashes = if item.content.is_empty() {
                json!({})
            } else {
                json!({"quickXorHash": item.quick_xor})
            };
            v["file"] = json!({
                "mimeType": item.mime_type,
                "hashes": hashes,
            });
            v["@microsoft.graph.downloadUrl"] = json!(self.download_url(item, content_base));
        }
        v
    }

    /// The drive resource (<https://learn.microsoft.com/graph/api/resources/drive>); quota
    /// values are numbers; `state` is `normal` above 10 % free. With no quota
    /// (`None`) the optional `quota` facet is left out.
    pub(crate) fn drive_json(&self, quota: Option<u64>) -> Value {
        let used = self.used();
        let now = rfc3339_secs(Utc::now());
        let mut drive = json!({
            "id": self.drive_id,
            "driveType": DRIVE_TYPE,
            "name": "OneDrive",
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "webUrl": "https://emulator.invalid/personal/user/Documents",
            "owner": {"user": {"displayName": "Emulator User", "id": "00000000-0000-0000-0000-000000000001"}},
            "quota": quota.map(|total| json!({
                "total": total,
                "used": used,
                "remaining": total - used.min(total),
                "deleted": 0,
                "state": "normal",
            })),
        });
        if quota.is_none()
            && let Some(fields) = drive.as_object_mut()
        {
            fields.remove("quota");
        }
        drive
    }

    fn info(&self, item: &GraphItem) -> GraphItemInfo {
        GraphItemInfo {
            id: item.id.clone(),
            name: item.name.clone(),
            path: self.path_of(&item.id),
            parent_id: item.parent.clone(),
            size: item.content.len() as u64,
            is_folder: item.folder,
            quick_xor_hash: (!item.folder).then(|| item.quick_xor.clone()),
        }
    }

    pub(crate) fn infos(&self) -> Vec<GraphItemInfo> {
        let mut all: Vec<&GraphItem> = self.items.values().filter(|i| i.id != self.root_id).collect();
        all.sort_by_key(|i| i.seq);
        all.into_iter().map(|i| self.info(i)).collect()
    }

    pub(crate) fn info_by_path(&self, path: &str) -> Option<GraphItemInfo> {
        let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let id = self.resolve(&self.root_id, &segments)?;
        self.items.get(&id).map(|i| self.info(i))
    }

    pub(crate) fn content(&self, id: &str) -> Option<Bytes> {
        self.items.get(id).map(|i| i.content.clone())
    }

    pub(crate) fn open_sessions(&self) -> usize {
        self.sessions.len()
    }
}
