//! Where a request goes: which service, and which of the two listeners.

use serde::{Deserialize, Serialize};

/// The service a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Google Drive v3 and Google OAuth.
    Google,
    /// Microsoft Graph (OneDrive) and the Microsoft identity platform.
    Microsoft,
}

/// Which of the emulator's two listeners a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The API port: Drive v3, Graph, token and authorize endpoints.
    Api,
    /// The second port: Drive resumable session URIs, Graph upload and download URLs.
    Content,
}
