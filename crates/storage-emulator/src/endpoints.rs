//! Where a running emulator listens, and the OAuth clients it accepts.

use serde::{Deserialize, Serialize};
use url::Url;

/// An OAuth client the emulator's token endpoints accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl AppCredentials {
    /// A client id and secret.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
        }
    }
}

/// Google's endpoint URLs on the emulator; each ends in `/` where the SDK appends to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleEndpoints {
    /// Drive v3 base (`…/drive/v3/`), google-drive3's `base_url`.
    pub api: Url,
    /// Root (`…/`), google-drive3's `root_url`, under which `upload/` and `resumable/` live.
    pub root: Url,
    /// Upload base (`…/upload/drive/v3/`).
    pub upload: Url,
    /// Token endpoint (`…/token`), production `https://oauth2.googleapis.com/token`.
    pub token: Url,
    /// Authorize page (`…/o/oauth2/v2/auth`), production
    /// `https://accounts.google.com/o/oauth2/v2/auth`.
    pub authorize: Url,
    /// Token revocation (`…/revoke`), production `https://oauth2.googleapis.com/revoke`.
    pub revoke: Url,
}

/// Microsoft's endpoint URLs on the emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MicrosoftEndpoints {
    /// Graph base including the version (`…/v1.0/`), production `https://graph.microsoft.com/v1.0/`.
    pub graph: Url,
    /// Login base (`…/`), production `https://login.microsoftonline.com/`.
    pub login: Url,
}

impl MicrosoftEndpoints {
    /// `{login}{tenant}/oauth2/v2.0/token`.
    pub fn token(&self, tenant: &str) -> Url {
        self.login
            .join(&format!("{tenant}/oauth2/v2.0/token"))
            .unwrap_or_else(|_| self.login.clone())
    }

    /// `{login}{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize(&self, tenant: &str) -> Url {
        self.login
            .join(&format!("{tenant}/oauth2/v2.0/authorize"))
            .unwrap_or_else(|_| self.login.clone())
    }
}

/// Every endpoint URL of a running emulator. The binary prints this as one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Google Drive and Google OAuth.
    pub google: GoogleEndpoints,
    /// Microsoft Graph and the Microsoft identity platform.
    pub microsoft: MicrosoftEndpoints,
}

impl Endpoints {
    pub(crate) fn for_base(base: &Url) -> Result<Self, url::ParseError> {
        Ok(Self {
            google: GoogleEndpoints {
                api: base.join("drive/v3/")?,
                root: base.clone(),
                upload: base.join("upload/drive/v3/")?,
                token: base.join("token")?,
                authorize: base.join("o/oauth2/v2/auth")?,
                revoke: base.join("revoke")?,
            },
            microsoft: MicrosoftEndpoints {
                graph: base.join("v1.0/")?,
                login: base.clone(),
            },
        })
    }
}
