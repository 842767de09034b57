//! What the emulator shows of its state to tests.

/// A Drive file as the emulator stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DriveFileInfo {
    /// File id.
    pub id: String,
    /// File name.
    pub name: String,
    /// Media type.
    pub mime_type: String,
    /// Parent folder ids.
    pub parents: Vec<String>,
    /// Content size in bytes.
    pub size: u64,
    /// Lower-case hex md5 of the content.
    pub md5_checksum: String,
    /// Whether the file is a folder.
    pub is_folder: bool,
    /// Whether the file is in the trash.
    pub trashed: bool,
    /// Whether the app made it (and so can see it under `drive.file`); false for files
    /// added with [`EmulatorHandle::drive_add_user_file`](crate::EmulatorHandle::drive_add_user_file).
    pub created_by_app: bool,
}

/// A Graph driveItem as the emulator stores it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct GraphItemInfo {
    /// Item id.
    pub id: String,
    /// Item name.
    pub name: String,
    /// Path from the root, e.g. `/dir/file.txt` (`/` for the root).
    pub path: String,
    /// Parent item id (`None` for the root).
    pub parent_id: Option<String>,
    /// Content size in bytes.
    pub size: u64,
    /// Whether the item is a folder.
    pub is_folder: bool,
    /// Base64 quickXorHash of the content (files only).
    pub quick_xor_hash: Option<String>,
}
