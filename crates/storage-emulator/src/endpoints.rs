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

/// Everything a client in any language needs to use a running emulator: the
/// first line the binary prints, as JSON. The `google` and `microsoft` keys
/// are [`Endpoints`], unchanged; the rest was added beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Announcement {
    /// The API endpoints, as before.
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// The two listeners.
    pub origins: Origins,
    /// The OAuth endpoints of both providers, ready to use.
    pub oauth: OAuthEndpoints,
    /// The OAuth clients the token and authorize endpoints accept.
    pub clients: Clients,
    /// The control API's base URL (`…/__emulator/`), when it is on.
    pub control: Option<Url>,
}

/// The emulator's two listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origins {
    /// Drive, Graph, both identity providers and the control API.
    pub api: Url,
    /// Drive resumable session URIs, Graph upload URLs and download URLs: the
    /// URLs the API hands out, on an origin of their own, as in production.
    pub content: Url,
}

/// The OAuth endpoints of both providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthEndpoints {
    /// Google's authorize page, token endpoint and revocation.
    pub google: ProviderOAuth,
    /// Microsoft's, for the tenant `common` (any tenant segment works).
    pub microsoft: ProviderOAuth,
}

/// One identity provider's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderOAuth {
    /// Where the user's browser goes to consent.
    pub authorize: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token: Url,
    /// Token revocation, where the provider has one.
    pub revoke: Option<Url>,
}

/// The OAuth clients the emulator accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clients {
    /// Google clients, the one [`EmulatorHandle::google_grant`](crate::EmulatorHandle::google_grant) uses first.
    pub google: Vec<AppCredentials>,
    /// Microsoft clients, the one [`EmulatorHandle::microsoft_grant`](crate::EmulatorHandle::microsoft_grant) uses first.
    pub microsoft: Vec<AppCredentials>,
    /// Whether any other client id is accepted too, with any secret.
    pub any_client: bool,
}
