//! Drive's state: files (with folders) and resumable upload sessions.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use storage_core::{Checksum, Md5Hasher};

use crate::http_util::{random_id, rfc3339_millis};
use crate::info::DriveFileInfo;

/// Media type of Drive folders
/// (<https://developers.google.com/drive/api/guides/folder>).
pub(crate) const FOLDER_MIME: &str = "application/vnd.google-apps.folder";

/// One Drive file or folder.
#[derive(Debug, Clone)]
pub(crate) struct DriveFile {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    pub parents: Vec<String>,
    pub content: Bytes,
    pub md5: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub trashed: bool,
    /// Trashed by a request naming this file, not by trashing a folder above it.
    pub explicitly_trashed: bool,
    /// Whether the app can see the file. With the `drive.file` scope an app sees only
    /// the files it created or was given; a file the user put into the app's folder
    /// through Drive's own interface is absent from `files.list` and answers 404 to
    /// `files.get` (<https://developers.google.com/workspace/drive/api/guides/api-specific-auth>).
    /// The emulator models an app holding `drive.file`: files made through the API are
    /// visible, files made by [`DriveStore::add_user_file`] are not.
    pub app_visible: bool,
    pub description: Option<String>,
    pub app_properties: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub version: u64,
    /// Creation order, for stable listings.
    pub seq: u64,
}

impl DriveFile {
    pub(crate) fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }

    /// The full File resource.
    ///
    /// int64 fields (`size`, `quotaBytesUsed`, `version`) are JSON **strings**: the Drive
    /// reference lists them as "string (int64 format)"
    /// (<https://developers.google.com/drive/api/reference/rest/v3/files>), and google-drive3
    /// 7.0.0 parses them with `DisplayFromStr`, failing the whole response on a number
    /// (`src/api.rs`, `File::size`). `size` and `md5Checksum` are absent on folders.
    pub(crate) fn resource(&self) -> Value {
        let mut v = json!({
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": self.parents,
            "createdTime": rfc3339_millis(self.created),
            "modifiedTime": rfc3339_millis(self.modified),
            "trashed": self.trashed,
            "explicitlyTrashed": self.explicitly_trashed,
            "version": self.version.to_string(),
            "spaces": ["drive"],
            "ownedByMe": true,
            "quotaBytesUsed": self.content.len().to_string(),
        });
        if !self.is_folder() {
            v["size"] = json!(self.content.len().to_string());
            v["md5Checksum"] = json!(self.md5);
            v["headRevisionId"] = json!(format!("rev{}", self.version));
        }
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        if !self.app_properties.is_empty() {
            v["appProperties"] = json!(self.app_properties);
        }
        if !self.properties.is_empty() {
            v["properties"] = json!(self.properties);
        }
        v
    }

    fn info(&self) -> DriveFileInfo {
        DriveFileInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            mime_type: self.mime_type.clone(),
            parents: self.parents.clone(),
            size: self.content.len() as u64,
            md5_checksum: self.md5.clone(),
            is_folder: self.is_folder(),
            trashed: self.trashed,
            created_by_app: self.app_visible,
        }
    }
}

/// Why metadata could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataError(pub String);

/// Applies writable metadata fields from a File JSON body (patch semantics).
///
/// `appProperties` / `properties` keys set to `null` are deleted
/// (<https://developers.google.com/drive/api/guides/properties>).
pub(crate) fn apply_metadata(file: &mut DriveFile, meta: &Map<String, Value>) -> Result<(), MetadataError> {
    if let Some(name) = meta.get("name") {
        file.name = name
            .as_str()
            .ok_or_else(|| MetadataError("name must be a string".into()))?
            .to_owned();
    }
    if let Some(mime) = meta.get("mimeType").and_then(Value::as_str) {
        file.mime_type = mime.to_owned();
    }
    if let Some(d) = meta.get("description") {
        file.description = d.as_str().map(str::to_owned);
    }
    if let Some(t) = meta.get("trashed").and_then(Value::as_bool) {
        file.trashed = t;
        file.explicitly_trashed = t;
    }
    for (key, target) in [
        ("appProperties", &mut file.app_properties),
        ("properties", &mut file.properties),
    ] {
        if let Some(map) = meta.get(key) {
            let map = map
                .as_object()
                .ok_or_else(|| MetadataError(format!("{key} must be an object")))?;
            for (k, v) in map {
                match v {
                    Value::Null => {
                        target.remove(k);
                    }
                    Value::String(s) => {
                        target.insert(k.clone(), s.clone());
                    }
                    other => {
                        target.insert(k.clone(), other.to_string());
                    }
                }
            }
        }
    }
    Ok(())
}

/// What a resumable session will do when complete.
#[derive(Debug, Clone)]
pub(crate) enum SessionTarget {
    /// files.create: a new file with this metadata.
    Create(Map<String, Value>),
    /// files.update: new content (and metadata) for an existing file.
    Update(String, Map<String, Value>),
}

/// A file's new content and its md5.
#[derive(Debug)]
pub(crate) struct Content {
    pub bytes: Bytes,
    pub md5: String,
}

impl Content {
    /// `bytes`, hashed now.
    pub(crate) fn hashed(bytes: Bytes) -> Self {
        let md5 = Checksum::md5_of(&bytes).to_provider_string();
        Self { bytes, md5 }
    }
}

/// A resumable upload session.
#[derive(Debug)]
pub(crate) struct DriveSession {
    pub target: SessionTarget,
    pub mime_type: String,
    pub total: Option<u64>,
    pub data: Vec<u8>,
    /// The md5 of `data`, kept as each chunk is stored (bytes are only ever
    /// appended), so that completing a large upload does not hash it all again.
    pub md5: Md5Hasher,
    pub expires_at: DateTime<Utc>,
    /// Set once the upload completed: the file id.
    pub completed: Option<String>,
    /// The `fields` mask of the initiating request, applied to the final response.
    pub fields: Option<String>,
}

/// All Drive state.
#[derive(Debug)]
pub(crate) struct DriveStore {
    files: HashMap<String, DriveFile>,
    root_id: String,
    pub sessions: HashMap<String, DriveSession>,
    seq: u64,
}

impl DriveStore {
    pub(crate) fn new() -> Self {
        let root_id = format!("0A{}", random_id(17));
        let now = Utc::now();
        let root = DriveFile {
            id: root_id.clone(),
            name: "My Drive".to_owned(),
            mime_type: FOLDER_MIME.to_owned(),
            parents: Vec::new(),
            content: Bytes::new(),
            md5: String::new(),
            created: now,
            modified: now,
            trashed: false,
            explicitly_trashed: false,
            app_visible: true,
            description: None,
            app_properties: BTreeMap::new(),
            properties: BTreeMap::new(),
            version: 1,
            seq: 0,
        };
        let mut files = HashMap::new();
        files.insert(root_id.clone(), root);
        Self {
            files,
            root_id,
            sessions: HashMap::new(),
            seq: 0,
        }
    }

    /// Maps the alias `root` to the root folder's id
    /// (<https://developers.google.com/drive/api/guides/about-files>: "you can use the alias
    /// `root` to refer to the root folder anywhere a file ID is provided").
    pub(crate) fn resolve(&self, id: &str) -> String {
        if id == "root" {
            self.root_id.clone()
        } else {
            id.to_owned()
        }
    }

    pub(crate) fn root_id(&self) -> &str {
        &self.root_id
    }

    pub(crate) fn get(&self, id: &str) -> Option<&DriveFile> {
        self.files.get(&self.resolve(id))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut DriveFile> {
        let id = self.resolve(id);
        self.files.get_mut(&id)
    }

    /// A file the app may see (`drive.file`, see [`DriveFile::app_visible`]); the API
    /// answers 404 for the others.
    pub(crate) fn visible(&self, id: &str) -> Option<&DriveFile> {
        self.get(id).filter(|f| f.app_visible)
    }

    /// [`DriveStore::visible`], mutable.
    pub(crate) fn visible_mut(&mut self, id: &str) -> Option<&mut DriveFile> {
        self.get_mut(id).filter(|f| f.app_visible)
    }

    /// Ids of every descendant of `id`, visible to the app or not.
    pub(crate) fn descendants(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![id.to_owned()];
        while let Some(next) = todo.pop() {
            for f in self.files.values().filter(|f| f.parents.contains(&next)) {
                out.push(f.id.clone());
                todo.push(f.id.clone());
            }
        }
        out
    }

    /// `files.update` with `{"trashed": …}`: a trashed folder takes its descendants,
    /// invisible ones included, into the trash for 30 days; they are trashed, not
    /// explicitly (<https://developers.google.com/workspace/drive/api/guides/delete>:
    /// "trashing a folder also trashes its descendants"). Restoring the folder restores
    /// the descendants that were not trashed on their own.
    pub(crate) fn cascade_trash(&mut self, id: &str, trashed: bool) {
        let id = self.resolve(id);
        for d in self.descendants(&id) {
            if let Some(f) = self.files.get_mut(&d) {
                if trashed {
                    f.trashed = true;
                } else if !f.explicitly_trashed {
                    f.trashed = false;
                }
            }
        }
    }

    /// Adds a file "created by the user outside the app", e.g. dropped into the app's
    /// folder through Drive's web page: the app cannot see it (`drive.file`), but a
    /// delete of its folder destroys it.
    pub(crate) fn add_user_file(&mut self, parent: &str, name: &str, content: Bytes) -> Option<String> {
        let parent = self.resolve(parent);
        if !self.files.get(&parent).is_some_and(DriveFile::is_folder) {
            return None;
        }
        let mut meta = Map::new();
        meta.insert("name".into(), json!(name));
        meta.insert("parents".into(), json!([parent]));
        let file = self.create(&meta, Content::hashed(content), Some("image/jpeg")).ok()?;
        let stored = self.files.get_mut(&file.id)?;
        stored.app_visible = false;
        Some(file.id)
    }

    /// Creates a file from metadata and content; parents default to the root.
    pub(crate) fn create(
        &mut self,
        meta: &Map<String, Value>,
        content: Content,
        media_type: Option<&str>,
    ) -> Result<DriveFile, MetadataError> {
        let Content { bytes: content, md5 } = content;
        let parents: Vec<String> = match meta.get("parents") {
            None | Some(Value::Null) => vec![self.root_id.clone()],
            Some(Value::Array(list)) => {
                let mut out = Vec::new();
                for p in list {
                    let p = p
                        .as_str()
                        .ok_or_else(|| MetadataError("parents must be strings".into()))?;
                    let id = self.resolve(p);
                    match self.files.get(&id) {
                        Some(f) if f.is_folder() && f.app_visible => out.push(id),
                        _ => return Err(MetadataError(format!("File not found: {p}."))),
                    }
                }
                // Drive files have exactly one parent; creating one with several is not
                // supported (https://developers.google.com/drive/api/guides/ref-single-parent;
                // google-drive3 7.0.0 `File::parents` doc). The message text is UNCONFIRMED.
                if out.len() > 1 {
                    return Err(MetadataError("A file can only have one parent.".into()));
                }
                if out.is_empty() {
                    vec![self.root_id.clone()]
                } else {
                    out
                }
            }
            Some(_) => return Err(MetadataError("parents must be an array".into())),
        };
        self.seq += 1;
        let now = Utc::now();
        let mut file = DriveFile {
            id: random_id(33),
            // files.create without a name: Drive calls the file "Untitled" (UNCONFIRMED wording).
            name: "Untitled".to_owned(),
            mime_type: media_type.unwrap_or("application/octet-stream").to_owned(),
            parents,
            md5,
            content,
            created: now,
            modified: now,
            trashed: false,
            explicitly_trashed: false,
            app_visible: true,
            description: None,
            app_properties: BTreeMap::new(),
            properties: BTreeMap::new(),
            version: 1,
            seq: self.seq,
        };
        apply_metadata(&mut file, meta)?;
        if file.is_folder() {
            file.content = Bytes::new();
            file.md5 = String::new();
        }
        self.files.insert(file.id.clone(), file.clone());
        Ok(file)
    }

    /// Replaces a file's content (files.update with media).
    pub(crate) fn replace_content(
        &mut self,
        id: &str,
        meta: &Map<String, Value>,
        content: Content,
        media_type: Option<&str>,
    ) -> Result<Option<DriveFile>, MetadataError> {
        let Content { bytes: content, md5 } = content;
        let Some(file) = self.visible_mut(id) else {
            return Ok(None);
        };
        apply_metadata(file, meta)?;
        if let Some(m) = media_type {
            file.mime_type = m.to_owned();
        }
        file.md5 = md5;
        file.content = content;
        file.modified = Utc::now();
        file.version += 1;
        Ok(Some(file.clone()))
    }

    /// Deletes a file the app can see and, for a folder, every descendant, including
    /// the ones the app cannot see: "permanently deletes a file owned by the user without
    /// moving it to the trash. If the target is a folder, all descendants owned by the user
    /// are also deleted" (<https://developers.google.com/drive/api/reference/rest/v3/files/delete>).
    /// Whether that takes descendants invisible under `drive.file` is UNCONFIRMED; the
    /// emulator takes them, the reading under which a client can lose the user's files.
    pub(crate) fn delete(&mut self, id: &str) -> bool {
        let id = self.resolve(id);
        if id == self.root_id || self.visible(&id).is_none() {
            return false;
        }
        let mut doomed = vec![id];
        while let Some(next) = doomed.pop() {
            self.files.remove(&next);
            doomed.extend(
                self.files
                    .values()
                    .filter(|f| f.parents.contains(&next))
                    .map(|f| f.id.clone()),
            );
        }
        true
    }

    /// Every file except the root, in creation order, visible to the app or not.
    pub(crate) fn listing(&self) -> Vec<&DriveFile> {
        self.listing_where(|_| true)
    }

    /// What `files.list` may show the app ([`DriveStore::listing`] less the
    /// files it cannot see) that `keep` accepts, in creation order.
    pub(crate) fn visible_listing(&self, keep: impl Fn(&DriveFile) -> bool) -> Vec<&DriveFile> {
        self.listing_where(|f| f.app_visible && keep(f))
    }

    /// The files except the root that `keep` accepts, in creation order. Only
    /// the hits are sorted: a lookup by name in a large drive sorts one or two.
    fn listing_where(&self, keep: impl Fn(&DriveFile) -> bool) -> Vec<&DriveFile> {
        let mut hits: Vec<&DriveFile> = self
            .files
            .values()
            .filter(|f| f.id != self.root_id && keep(f))
            .collect();
        hits.sort_by_key(|f| f.seq);
        hits
    }

    /// Bytes used by file contents.
    pub(crate) fn usage(&self) -> u64 {
        self.files.values().map(|f| f.content.len() as u64).sum()
    }

    /// Bytes used by trashed files.
    pub(crate) fn usage_in_trash(&self) -> u64 {
        self.files
            .values()
            .filter(|f| f.trashed)
            .map(|f| f.content.len() as u64)
            .sum()
    }

    pub(crate) fn infos(&self) -> Vec<DriveFileInfo> {
        self.listing().into_iter().map(DriveFile::info).collect()
    }

    pub(crate) fn content(&self, id: &str) -> Option<Bytes> {
        self.get(id).map(|f| f.content.clone())
    }

    pub(crate) fn open_sessions(&self) -> usize {
        self.sessions.values().filter(|s| s.completed.is_none()).count()
    }
}
